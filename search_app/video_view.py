"""A video hit in the page: its caption, and the viewer that plays the video from the second that matched.

The browser's own player (Gradio's Video component, a plain ``<video>``) plays the original; ``PLAY_FROM_JS``
seeks it to the hit's second once the file's metadata has loaded. A video the browser cannot play (HEVC in most
browsers: checked with ``canPlayType``, or the player's own error) is replaced by the keyframe's preview and a
sentence that says why. A Live Photo's clip or a motion photo's video plays in the same player, under its photo
(``live_clip``).
"""

from __future__ import annotations

import html
import json

import gradio as gr

HEVC_TYPE = 'video/mp4; codecs="hvc1.1.6.L93.B0"'  # what the browser is asked about an HEVC video

# (info) -> seek the player to info.start, or show the frame preview when the browser cannot play info.codec.
PLAY_FROM_JS = (
    """
(info) => {
  // the note is a paragraph inside the Gradio HTML component: writing the component's own root would replace the
  // nodes Gradio keeps there, and later opens in the page would stop updating
  const note = document.querySelector('#player_note .player-why');
  if (!info) {  // a photo: no player, and no note left from the item opened before
    if (note) note.textContent = '';
    return;
  }
  const {start, codec, when, live} = JSON.parse(info);
  const fallback = (why) => {
    const player = document.querySelector('#player');
    if (player) player.style.display = 'none';
    if (live) {  // the photo itself is on screen already
      if (note) note.textContent = `This browser cannot play ${live} (${why}); the photo is shown.`;
      return;
    }
    const frame = document.querySelector('#frame');
    if (frame) frame.style.display = '';
    if (note) note.textContent = `This browser cannot play this video (${why}): showing the frame at ${when}. `
      + 'Download the original to play it.';
  };
  const began = Date.now();
  const seek = () => {
    const video = document.querySelector('#player video');
    if (!video || !video.getAttribute('src')) {
      if (Date.now() - began < 20000) setTimeout(seek, 100);
      return;
    }
    if (codec === 'hevc' && !video.canPlayType('"""
    + HEVC_TYPE.replace('"', '\\"')
    + """')) {
      fallback('HEVC');
      return;
    }
    video.addEventListener('error', () => fallback(codec ? codec.toUpperCase() : 'unsupported format'), {once: true});
    const go = () => { video.currentTime = start; video.dataset.startedAt = String(start); };
    if (video.readyState >= 1) go(); else video.addEventListener('loadedmetadata', go, {once: true});
  };
  if (note) note.textContent = '';
  const frame = document.querySelector('#frame');
  if (frame) frame.style.display = 'none';
  const player = document.querySelector('#player');
  if (player) player.style.display = '';
  seek();
}
"""
)


def components():
    """(player, frame, info, note): the player, the frame shown instead when it cannot play, the hidden facts
    PLAY_FROM_JS reads, and the line that says why."""
    player = gr.Video(visible=False, elem_id="player", interactive=False, label="Video", autoplay=False, buttons=[])
    frame = gr.Image(visible=False, elem_id="frame", interactive=False, label="Frame", buttons=[])
    info = gr.Textbox(visible=False, elem_id="player_info")
    note = gr.HTML('<p class="player-why"></p>', elem_id="player_note")  # PLAY_FROM_JS writes the paragraph
    return player, frame, info, note


def clock(seconds: float | None) -> str:
    """0:09, 12:05, 1:02:03."""
    seconds = int(round(seconds or 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def caption(result) -> str:
    """What the gallery says under a video hit besides its name and score: the moment, and how many more matched."""
    more = len(result.moments) - 1
    return f"▶ {clock(result.timestamp_s)}" + (f" · +{more} more moment{'s' if more > 1 else ''}" if more > 0 else "")


def details(result) -> list[str]:
    """Lines for the selected video hit."""
    moments = ", ".join(f"{clock(seconds)} ({score:.3f})" for seconds, score in result.moments)
    return [
        f"video · {clock(result.duration_s)} long · plays from {clock(result.timestamp_s)}",
        f"matching moments: {html.escape(moments)}",
    ]


def codec_of(path) -> str:
    """The video codec's FFmpeg name ('h264', 'hevc', ...), '' when the file cannot be probed."""
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            return container.streams.video[0].codec_context.name if container.streams.video else ""
    except Exception:  # noqa: BLE001 - the player then reports what the browser says
        return ""


def shown(path, frame_path, result) -> tuple:
    """Updates (player, frame, info) for a video hit whose original (a served copy) is ``path``."""
    info = json.dumps(
        {"start": float(result.timestamp_s or 0), "codec": codec_of(path), "when": clock(result.timestamp_s)}
    )
    return (
        gr.update(value=str(path), visible=True, label="Video"),
        gr.update(value=str(frame_path), visible=True),
        info,
    )


MOVING = {"Live Photo": "this Live Photo's clip", "Motion photo": "this motion photo's video"}  # kind -> the note's


def live_clip(path, kind: str = "Live Photo") -> tuple:
    """Updates (player, frame, info) for a photo that moves (``kind``: a key of ``MOVING``) whose video (a served
    copy) is ``path``: it plays from its start, under the photo, when asked (no frame stands in: the photo is
    there)."""
    info = json.dumps({"start": 0.0, "codec": codec_of(path), "when": clock(0), "live": MOVING[kind]})
    return (
        gr.update(value=str(path), visible=True, label=kind),
        gr.update(value=None, visible=False),
        info,
    )


HIDDEN = (gr.update(value=None, visible=False), gr.update(value=None, visible=False), "")
