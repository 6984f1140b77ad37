"""Image preprocessing as the reference does it: EXIF transpose, RGB, 1-pixel-high stretched to 2."""

from PIL import Image

from mme5.images import image_size, load_image


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), "red")
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° on display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif)
    assert load_image(path).size == (20, 40)
    assert image_size(path) == (20, 40)


def test_one_pixel_high_image_is_stretched_to_two():
    assert load_image(Image.new("RGB", (50, 1))).size == (50, 2)


def test_modes_become_rgb(tmp_path):
    for mode in ("CMYK", "L", "P", "RGBA", "LA", "I;16"):
        assert load_image(Image.new(mode, (8, 8))).mode == "RGB"
    palette_alpha = Image.new("P", (8, 8))
    palette_alpha.info["transparency"] = 0
    assert load_image(palette_alpha).mode == "RGB"


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.new("RGB", (10, 10), colour) for colour in ("red", "blue")]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    assert load_image(path).getpixel((5, 5))[0] > 200


def test_draft_mode_shrinks_big_jpegs(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (2000, 1600), "blue").save(path)
    assert load_image(path, draft_size=300).size[0] < 2000
    assert min(load_image(path, draft_size=300).size) >= 300
