"""The page's look and layout: CSS, the page's scripts, and the components in their places (no handlers here).

``build_page`` makes the components inside a ``gr.Blocks`` and returns them as a ``Page``; ``SearchUI.build``
(search_app/ui.py) wires their events to the handlers. ``Page.outputs`` lists the components that handlers repaint,
in the order ``ui_reply.OUTPUTS`` names them.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from .engine import MAX_QUERY_CHARS
from .filters import FILTERS
from . import map_view, video_view
from .ui_reply import OUTPUTS

PLACEHOLDER = "a cat on a sofa · кошка на диване · 沙发上的猫 · قطة على الأريكة · un perro en la playa"
SMOKE_NOTICE = (
    "This demo model has random weights: results are random (--tiny). Start the app with --model to search for real."
)
SORT_LABELS = {"Best match": "score", "Newest first": "date", "Oldest first": "date_asc"}
ACCENT = "#1d4ed8"  # blue-700: white on it is 6.7:1, it on white 6.7:1 (WCAG AA for text and focus rings)
# One accent across Gradio's components (buttons, checkboxes, radios, sliders, links, focus), not Gradio's orange.
THEME = gr.themes.Default(primary_hue=gr.themes.colors.blue).set(
    color_accent=ACCENT,
    color_accent_soft="#dbeafe",
    button_primary_background_fill=ACCENT,
    button_primary_background_fill_hover="#1e40af",
    button_primary_border_color=ACCENT,
    button_primary_text_color="#ffffff",
    checkbox_background_color_selected=ACCENT,
    checkbox_border_color_selected=ACCENT,
    checkbox_border_color_focus=ACCENT,
    slider_color=ACCENT,
    link_text_color=ACCENT,
    link_text_color_hover="#1e40af",
    loader_color=ACCENT,
    input_border_color_focus=ACCENT,
)
INTRO = (
    "<h1>Photo search</h1><p>Describe a photo in any language, upload a photo to find similar ones, or do both "
    "to change it (“this, but at night”). Dates like “beach July 2023” become a filter.</p>"
)

CSS = (
    map_view.CSS
    + """
#footer { font-size: 0.85em; }
#status p { margin: 0.2em 0; }
#intro h1 { font-size: 1.6em; margin: 0 0 0.2em; }
/* Results flow with the page and wrap to the screen: no sideways overflow on a phone, no inner scroll box. */
#results .grid-wrap, #results .fixed-height { max-height: none !important; height: auto !important;
  overflow: visible !important; min-height: 0 !important; }
#results .grid-container { grid-template-columns: repeat(auto-fill, minmax(min(150px, 42vw), 1fr)) !important;
  grid-template-rows: none !important; }
/* Contrast (WCAG AA): white on #1d4ed8 is 6.7:1; the focus ring #1d4ed8 on white is 6.7:1. */
#search, #search:hover { background: #1d4ed8 !important; border-color: #1d4ed8 !important; color: #fff !important; }
#search:disabled { opacity: 1 !important; cursor: progress; }  /* "Searching…" stays readable (6.7:1) */
:focus-visible { outline: 3px solid #1d4ed8 !important; outline-offset: 2px !important; }
#date_chip, #place_chip, #area_chip { max-width: fit-content; }
#map_apply { display: none !important; }  /* pressed by the map's script (search_app/static/map.js) */
/* Gradio's faint texts (upload "- or -", footer links) and the status line dimmed while a query runs. */
.or, .show-api, .built-with, .show-api *, .built-with * { color: #3f3f46 !important; opacity: 1 !important; }
#status, #status .pending, #status.pending, .pending #status, #status .prose { opacity: 1 !important; }
#status bdi, #details bdi { unicode-bidi: isolate; }
/* The viewer covers the page; the photo fits the screen whole (never cropped, never scrolled to). */
#viewer { position: fixed !important; inset: 0; z-index: 1000; margin: 0 !important; max-width: none !important;
  background: #18181b; padding: 8px 12px; overflow-y: auto; border-radius: 0 !important; gap: 6px !important; }
#viewer_image, #viewer_image .image-container, #viewer_image .image-frame { background: transparent !important;
  height: auto !important; }
#viewer_image img { display: block; margin: 0 auto; max-width: 100% !important; width: auto !important;
  height: auto !important; max-height: calc(100vh - 150px) !important; object-fit: contain; }
#viewer #details, #viewer #details *, #viewer #player_note { color: #f4f4f5 !important; }
/* The text read in the photo (OCR): a quote in its own direction, selectable, so a sign's words can be copied. */
#details blockquote#photo_text { margin: 4px 0; padding: 4px 10px; border-left: 3px solid #60a5fa;
  user-select: text; white-space: normal; overflow-wrap: anywhere; }
#details .photo-text-label { margin-bottom: 0; font-weight: 600; }
#player video, #frame img { max-height: calc(100vh - 150px) !important; object-fit: contain; }  /* a video hit */
#viewer_actions { flex-wrap: wrap; gap: 6px; }
#viewer_actions button, #viewer_actions a { flex: 0 1 auto !important; min-width: 0 !important; }
#results .month-heading { grid-column: 1 / -1; margin: 0.6em 0 0; font-size: 1.05em; font-weight: 600; }
#results.by-date .grid-container { grid-auto-rows: auto !important; }
#results.by-date .grid-container > .month-heading:first-child { margin-top: 1.2em; }
/* Phone (CSS :has, no script): once results of a search are on the page (not the newest photos of the first screen), the form shrinks to one bar that stays at the top (the intro, "Without…"
   and the upload box step aside until Clear), so the results fill the screen; thumbnails stay touch-sized. */
@media (max-width: 640px) {
  div:has(#results:not(.newest) .thumbnail-item) #intro, div:has(#results:not(.newest) .thumbnail-item) #without, div:has(#results:not(.newest) .thumbnail-item) #upload_col { display: none !important; }
  div:has(#results:not(.newest) .thumbnail-item) #search_bar { position: sticky; top: 0; z-index: 40;
    background: var(--body-background-fill, #fff) !important; padding-bottom: 6px;
    box-shadow: 0 2px 6px rgba(0, 0, 0, 0.15); max-height: 70vh; overflow-y: auto; }
  div:has(#results:not(.newest) .thumbnail-item) #query [data-testid="block-info"] { position: absolute !important; width: 1px; height: 1px;
    overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
  #search_buttons { flex-wrap: nowrap !important; }
  #search_buttons button { min-width: 0 !important; }
  #results .grid-container { grid-template-columns: repeat(2, 1fr) !important; gap: 6px !important; }
  #results .thumbnail-item { min-height: 44px; }
}
"""
)

# Runs once on page load: status line as a live region, suggestions for filter boxes, Escape returns focus.
JS = r"""
() => {
  const status = document.querySelector('#status');
  if (status) { status.setAttribute('role', 'status'); status.setAttribute('aria-live', 'polite');
                status.setAttribute('tabindex', '-1'); }
  const attach = () => document.querySelectorAll('datalist[data-for]').forEach((list) => {
    const box = document.querySelector('#' + list.dataset.for + ' input, #' + list.dataset.for + ' textarea');
    if (box) box.setAttribute('list', list.id);
  });
  // Every script: typed text and result text take the direction of their own first strong letter.
  const directions = () => document.querySelectorAll(
    'input[type=text], input:not([type]), textarea, #results .caption-label, #results figcaption, #details p'
  ).forEach((node) => { if (node.getAttribute('dir') !== 'auto') node.setAttribute('dir', 'auto'); });
  // Sorted by date: a heading above the first photo of each month (the month of the caption's date, in the
  // browser's language). Redrawn whenever the results change; the observer pauses meanwhile.
  const headings = () => {
    document.querySelectorAll('#results .month-heading').forEach((heading) => heading.remove());
    if (!document.querySelector('#results.by-date')) return;  // marked by the server when sorted by date
    let last = null;
    document.querySelectorAll('#results .thumbnail-item').forEach((item) => {
      const label = item.querySelector('.caption-label');
      const found = label && label.textContent.match(/(?:^|· )\d{1,2} ([A-Z][a-z]{2}) (\d{4})(?: ·|$)/);
      const key = found ? found[1] + ' ' + found[2] : '';
      if (key === last) return;
      last = key;
      const heading = document.createElement('h3');
      heading.className = 'month-heading';
      heading.textContent = found ? new Date(`${found[1]} 1, ${found[2]}`).toLocaleDateString(undefined,
        {month: 'long', year: 'numeric'}) : 'Date unknown';
      (item.closest('.gallery-item') || item).before(heading);  // a cell of the grid, spanning its width
    });
  };
  const OBSERVED = {childList: true, subtree: true, attributes: true, attributeFilter: ['class']};
  const observer = new MutationObserver(() => {
    observer.disconnect();
    attach(); directions(); headings();
    observer.observe(document.body, OBSERVED);
  });
  window.photoSearchHeadings = () => {
    observer.disconnect(); headings(); observer.observe(document.body, OBSERVED);
  };
  attach(); directions(); headings();
  observer.observe(document.body, OBSERVED);
  // The viewer is a dialog; the result it shows is remembered, so Escape (or Back) returns the focus to it.
  const shown = (selector) => { const node = document.querySelector(selector); return node && node.getClientRects().length > 0; };
  const whenever = (test, then, tries = 60) => (test() ? then() : tries && setTimeout(
    () => whenever(test, then, tries - 1), 50));
  // The focus moves once the viewer has opened or closed, but only if the person has not moved it meanwhile
  // (Tab to a map marker, a click in the query box): it is still where the action left it, or nowhere.
  const untouched = (from) => [from, document.body, null].includes(document.activeElement);
  document.addEventListener('click', (event) => {
    const from = document.activeElement;
    const item = event.target.closest && event.target.closest('#results .thumbnail-item');
    if (item) {
      window.photoSearchOpened = [...document.querySelectorAll('#results .thumbnail-item')].indexOf(item);
      whenever(() => shown('#viewer_close'), () => {
        if (untouched(from) || document.activeElement === item) document.querySelector('#viewer_close').focus();
      });
    }
    if (event.target.closest && event.target.closest('#viewer_close')) {
      whenever(() => !shown('#viewer'), () => {
        const back = document.querySelectorAll('#results .thumbnail-item')[window.photoSearchOpened];
        const closer = document.querySelector('#viewer_close');
        if (back && (untouched(from) || document.activeElement === closer)) {
          back.focus(); back.scrollIntoView({block: 'nearest'});
        }
      });
    }
  }, true);
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    if (shown('#viewer')) {
      event.preventDefault();
      document.querySelector('#viewer_close').click();
      return;
    }
    setTimeout(() => {
      if (document.activeElement && document.activeElement !== document.body) return;
      const items = document.querySelectorAll('#results .thumbnail-item');
      const target = items[window.photoSearchOpened] || document.querySelector('#results .thumbnail-item.selected')
        || items[0] || document.querySelector('#query input, #query textarea');
      if (target) target.focus();
    }, 50);
  });
  // Gradio's container hides overflow, which makes it a scroll box and stops the phone's search bar from
  // sticking to the top; "clip" cuts the same overflow without being one.
  const container = document.querySelector('.gradio-container');
  if (container) container.style.overflow = 'clip';
  const viewer = document.querySelector('#viewer');
  if (viewer) { viewer.setAttribute('role', 'dialog'); viewer.setAttribute('aria-modal', 'true');
                viewer.setAttribute('aria-label', 'Photo'); }
  window.addEventListener('popstate', () => location.reload());
  // The map (search_app/map_view.py): its script loads Leaflet when the Map button is first pressed.
  if (!document.querySelector('script[data-photo-map]')) {
    const script = document.createElement('script');
    script.src = new URL('map-static/map.js', document.baseURI).href;
    script.dataset.photoMap = '1';
    document.head.appendChild(script);
  }
}
"""
# Dates in the viewer's details in the browser's own language and time style. The details may render after this
# runs (a video's player updates too): it looks again until the date is there, for at most 10 s; rewritten dates are
# marked data-local.
LOCAL_TIMES_JS = """
() => {
  const began = Date.now();
  const run = () => {
    const nodes = document.querySelectorAll('#details time[datetime]:not([data-local])');
    nodes.forEach((node) => {
      const when = new Date(node.getAttribute('datetime'));
      if (!isNaN(when)) node.textContent = when.toLocaleString(undefined, {dateStyle: 'full', timeStyle: 'short'});
      node.dataset.local = '1';
    });
    if (!nodes.length && !document.querySelector('#details time[data-local]') && Date.now() - began < 10000) {
      setTimeout(run, 50);
    }
  };
  setTimeout(run, 50);
}
"""
MAP_JS = "(data) => { if (window.photoSearchMap) window.photoSearchMap(data); else window.photoSearchMapData = data; }"
AFTER_SEARCH_JS = """
(url, map) => {
  if (window.photoSearchMap) window.photoSearchMap(map); else window.photoSearchMapData = map;
  const wanted = url ? '?' + url : location.pathname;
  if (location.search !== (url ? '?' + url : '')) history.pushState(null, '', wanted);
  if (window.photoSearchHeadings) window.photoSearchHeadings();
  const status = document.querySelector('#status');
  if (status) status.focus({preventScroll: true});
}
"""
SCROLL_TO_NEW_JS = """
(index) => {
  if (index === null || index === undefined || index < 0) return;
  setTimeout(() => {
    const items = document.querySelectorAll('#results .thumbnail-item');
    const item = items[index];
    if (item) { item.scrollIntoView({block: 'center'}); item.focus({preventScroll: true}); }
  }, 300);
}
"""


# -- The first screen (before any search): the newest photos as the results and example queries in the browser's
#    language. The chips are drawn by EXAMPLES_JS from EXAMPLES; clicking one types it into the query box and searches.
EXAMPLES = {  # navigator.language's primary subtag -> (what the row is called, 4 example queries)
    "en": ("Try", ["a dog on the beach", "sunset over the sea", "birthday cake", "snow in the mountains"]),
    "de": (
        "Probieren Sie",
        ["ein Hund am Strand", "Sonnenuntergang am Meer", "Geburtstagskuchen", "Schnee in den Bergen"],
    ),
    "fr": (
        "Essayez",
        ["un chien sur la plage", "coucher de soleil sur la mer", "gâteau d’anniversaire", "neige en montagne"],
    ),
    "es": ("Pruebe", ["un perro en la playa", "atardecer sobre el mar", "pastel de cumpleaños", "nieve en la montaña"]),
    "ja": ("例えば", ["浜辺の犬", "海に沈む夕日", "誕生日ケーキ", "雪の山"]),
    "ar": ("جرّب", ["كلب على الشاطئ", "غروب الشمس فوق البحر", "كعكة عيد ميلاد", "ثلج على الجبال"]),
    "ru": ("Попробуйте", ["собака на пляже", "закат над морем", "торт на день рождения", "снег в горах"]),
    "hi": ("आज़माएँ", ["समुद्र तट पर कुत्ता", "समुद्र पर सूर्यास्त", "जन्मदिन का केक", "पहाड़ों पर बर्फ़"]),
    "zh": ("试试", ["海滩上的狗", "海上日落", "生日蛋糕", "雪山"]),
}
EXAMPLES_CSS = """
#examples { margin: 0; padding: 0; }
#examples .examples-row { display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin: 0.3em 0; }
#examples .examples-title { font-weight: 600; margin-inline-end: 0.3em; }
#examples button.example { border: 1px solid #1d4ed8; color: #1d4ed8; background: #fff; border-radius: 999px;
  padding: 6px 12px; min-height: 36px; font: inherit; cursor: pointer; }
#examples button.example:hover { background: #dbeafe; }
/* Only before the first search (and after Clear): a search's own results take their place. */
div:has(#results:not(.newest) .thumbnail-item) #examples { display: none !important; }
/* Phone, first screen: the newest photos start on it; the intro keeps its title, "Without…" waits for a search
   and the upload box is a short strip (still a drop target and a button). */
@media (max-width: 640px) {
  div:has(#results.newest .thumbnail-item) #intro p, div:has(#results.newest .thumbnail-item) #without {
    display: none !important; }
  div:has(#results.newest .thumbnail-item) #upload, div:has(#results.newest .thumbnail-item) #upload > div,
  div:has(#results.newest .thumbnail-item) #upload .image-container,
  div:has(#results.newest .thumbnail-item) #upload .upload-container { height: auto !important;
    min-height: 0 !important; max-height: 110px !important; }
}
"""
EXAMPLES_JS = """
() => {
  const examples = %s;
  const draw = (tries) => {
    const host = document.querySelector('#examples');
    if (!host) { if (tries) setTimeout(() => draw(tries - 1), 100); return; }
    const wanted = (navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language])
      .map((tag) => String(tag || '').toLowerCase().split('-')[0]);
    const lang = wanted.find((code) => examples[code]) || 'en';
    const [title, queries] = examples[lang];
    const row = document.createElement('div');
    row.className = 'examples-row';
    row.setAttribute('role', 'group');
    row.setAttribute('lang', lang);
    row.setAttribute('dir', 'auto');
    const name = document.createElement('span');
    name.className = 'examples-title';
    name.id = 'examples-title';
    name.textContent = title;
    row.setAttribute('aria-labelledby', name.id);
    row.append(name);
    queries.forEach((text) => {
      const chip = document.createElement('button');
      chip.type = 'button';
      chip.className = 'example';
      chip.setAttribute('dir', 'auto');
      chip.textContent = text;
      chip.addEventListener('click', () => {
        const box = document.querySelector('#query input, #query textarea');
        if (!box) return;
        box.value = text;
        box.dispatchEvent(new Event('input', {bubbles: true}));
        setTimeout(() => document.querySelector('#search').click(), 50);  // after Gradio took the typed value
      });
      row.append(chip);
    });
    host.replaceChildren(row);
  };
  draw(100);
}
""" % json.dumps(EXAMPLES, ensure_ascii=False)
CSS += EXAMPLES_CSS


# -- Log out (login on): a link to Gradio's /logout, which ends the session (every login of this user) and comes back
#    to the login page (search_app/login_page.py). Relative, so it works behind a proxy's path prefix too.
LOGOUT_HTML = '<nav aria-label="Account"><a id="logout" href="logout">Log out</a></nav>'
LOGOUT_CSS = """
#logout_bar { display: flex; justify-content: flex-end; margin: 0 0 -0.5em; padding: 0; }
#logout { display: inline-block; padding: 8px 12px; min-height: 24px; color: #1d4ed8; font-weight: 600;
  text-decoration: underline; }
"""
CSS += LOGOUT_CSS


def logout_link() -> gr.HTML:
    """The "Log out" control at the top of the page (call inside ``gr.Blocks``, only when login is on)."""
    return gr.HTML(LOGOUT_HTML, elem_id="logout_bar")


# -- The viewer's moves: previous / next result (buttons, ←/→, a sideways swipe) and zoom to the original at 100 %
#    (a button or a double click on the photo; panned by scrolling). The buttons do the work on the server (ui.py);
#    VIEWER_JS adds the keys, the swipe and the double click, and keeps track of which result is open (so Escape
#    returns the focus to it).
VIEWER_CSS = """
#viewer_full { overflow: auto !important; max-height: calc(100vh - 150px); max-width: 100%; background: #000;
  touch-action: pan-x pan-y; }
#viewer_full .image-container, #viewer_full .image-frame, #viewer_full button { overflow: visible !important;
  max-width: none !important; max-height: none !important; width: max-content !important; height: auto !important;
  cursor: zoom-out; display: block; }
#viewer_full img { display: block; max-width: none !important; max-height: none !important; width: auto !important;
  height: auto !important; object-fit: none !important; }
#viewer_image img { cursor: zoom-in; touch-action: pan-y; }
"""
CSS += VIEWER_CSS
VIEWER_JS = """
() => {
  const shown = (selector) => { const node = document.querySelector(selector); return node && node.getClientRects().length > 0; };
  const count = () => document.querySelectorAll('#results .thumbnail-item').length;
  const step = (delta) => {
    const button = document.querySelector(delta < 0 ? '#viewer_previous' : '#viewer_next');
    if (!shown('#viewer') || !button || button.disabled) return;
    button.click();
  };
  document.addEventListener('click', (event) => {
    const button = event.target.closest && event.target.closest('#viewer_previous, #viewer_next');
    if (!button) return;
    const now = window.photoSearchOpened || 0;
    const moved = now + (button.id === 'viewer_next' ? 1 : -1);
    if (moved >= 0 && moved < count()) window.photoSearchOpened = moved;  // Escape comes back to this one
  }, true);
  document.addEventListener('keydown', (event) => {
    if (!['ArrowLeft', 'ArrowRight'].includes(event.key) || !shown('#viewer')) return;
    if (event.altKey || event.ctrlKey || event.metaKey || event.shiftKey) return;
    if (event.target.closest && event.target.closest('input, textarea, select, [contenteditable], video')) return;
    if (shown('#viewer_full')) return;  // zoomed in: the arrows scroll the photo
    event.preventDefault();
    step(event.key === 'ArrowRight' ? 1 : -1);
  });
  let start = null;  // a sideways swipe over the fitted photo moves to the next / previous result
  document.addEventListener('touchstart', (event) => {
    start = event.touches.length === 1 && event.target.closest && event.target.closest('#viewer')
      && !shown('#viewer_full') ? {x: event.touches[0].clientX, y: event.touches[0].clientY} : null;
  }, {passive: true});
  document.addEventListener('touchend', (event) => {
    if (!start || !event.changedTouches.length) return;
    const dx = event.changedTouches[0].clientX - start.x, dy = event.changedTouches[0].clientY - start.y;
    start = null;
    if (Math.abs(dx) >= 50 && Math.abs(dx) > 1.5 * Math.abs(dy)) step(dx < 0 ? 1 : -1);
  }, {passive: true});
  document.addEventListener('dblclick', (event) => {
    if (!event.target.closest) return;
    if (event.target.closest('#viewer_image img')) document.querySelector('#viewer_zoom').click();
    else if (event.target.closest('#viewer_full img')) document.querySelector('#viewer_fit').click();
  });
}
"""


def viewer_controls() -> tuple:
    """(previous, next, 100 %, fit) buttons of the viewer's action row (call inside it)."""
    previous = gr.Button("‹ Previous", elem_id="viewer_previous", size="sm")
    following = gr.Button("Next ›", elem_id="viewer_next", size="sm")
    zoom = gr.Button("100 %", elem_id="viewer_zoom", size="sm")
    fit = gr.Button("Fit to screen", elem_id="viewer_fit", size="sm", visible=False)
    return previous, following, zoom, fit


# -- Names for Gradio's own controls (axe: 0 serious, 0 critical on every state). Gradio names each thumbnail
#    "Thumbnail N of M" while it shows the photo's caption, names the upload button differently from its visible
#    text, and leaves the button around a shown image without a name; a screen reader then hears numbers, not photos.
#    NAMES_JS renames them whenever Gradio redraws them (its own observer, paused while it writes).
NAMES_JS = """
() => {
  const text = (node) => (node ? node.textContent : '').replace(/\\s+/g, ' ').trim();
  const name = (node, wanted) => { if (wanted && node.getAttribute('aria-label') !== wanted) node.setAttribute('aria-label', wanted); };
  const rename = () => {
    const items = [...document.querySelectorAll('#results .thumbnail-item')];
    items.forEach((item, index) => {  // its caption (date · file name), then where it is in the list
      const caption = text(item.querySelector('.caption-label'));
      name(item, caption ? `${caption} (${index + 1} of ${items.length})` : `Photo ${index + 1} of ${items.length}`);
    });
    document.querySelectorAll('#upload button.upload-container, #upload .upload-container button').forEach(
      (button) => name(button, ('Upload a photo to search with: ' + text(button)).trim()));
    const photo = text(document.querySelector('#details p strong, #details strong'));
    [['#viewer_image', 'The open photo'], ['#viewer_full', 'The open photo at 100 %'],
     ['#source', 'The photo searched with']].forEach(([id, label]) => {
      document.querySelectorAll(id + ' .image-container button, ' + id + ' .image-frame').forEach((node) => {
        if (node.tagName === 'BUTTON') name(node, photo && id !== '#source' ? `${label}: ${photo}` : label);
      });
    });
    // Gradio's "Empty value" placeholder is a plain div with an aria-label (a name it may not have): an image
    // of "nothing here", named for what it means.
    document.querySelectorAll('.empty[aria-label]:not([role])').forEach((node) => {
      node.setAttribute('role', 'img');
      if (node.closest('#results')) name(node, 'No photos shown');
    });
  };
  const WATCHED = {childList: true, subtree: true, characterData: true, attributes: true,
                   attributeFilter: ['aria-label']};
  const observer = new MutationObserver(() => { observer.disconnect(); rename(); observer.observe(document.body, WATCHED); });
  rename();
  observer.observe(document.body, WATCHED);
}
"""


def _lenient_preprocess(self, payload):
    """The upload's file path even when it is not a readable image (the handlers then say what is wrong)."""
    try:
        return gr.Image.preprocess(self, payload)
    except Exception:  # noqa: BLE001 - PIL raises many types for bad files
        return getattr(payload, "path", None)


# gr.Image whose unreadable uploads reach the handlers instead of failing the event: failing it would
# leave the bad file in the box and break every later search. A class, not a patched instance, because
# Gradio rebuilds a component from its class when an event updates it. Made with ABCMeta.__new__ so
# Gradio's ComponentMeta does not write a .pyi file next to this module; ``is_template`` makes the page
# use the ordinary image widget.
UploadImage = abc.ABCMeta.__new__(
    type(gr.Image),
    "UploadImage",
    (gr.Image,),
    {
        "preprocess": _lenient_preprocess,
        "is_template": True,
        "__module__": __name__,
        "__doc__": "gr.Image for uploads that are checked by the app (search_app/uploads.py), not by PIL here.",
    },
)


def upload_image(**kwargs) -> gr.Image:
    return UploadImage(**kwargs)


@dataclass
class Page:
    """The page's components (made by ``build_page``)."""

    query: gr.Textbox
    without: gr.Textbox
    search: gr.Button
    clear: gr.Button
    date_chip: gr.Button
    place_chip: gr.Button
    area_chip: gr.Button  # the map-area filter (bbox), removable like the date chip
    accordion: gr.Accordion
    boxes: dict  # filter name -> gr.Textbox, one per filters.FILTERS
    sort: gr.Radio
    collapse: gr.Checkbox
    strong: gr.Checkbox
    scores: gr.Checkbox  # the match score in each caption (display only)
    upload: gr.Image
    status: gr.Markdown
    show_all: gr.Button
    source: gr.Image
    gallery: gr.Gallery
    similar: gr.Button
    original: gr.DownloadButton
    more: gr.Button
    details: gr.Markdown
    viewer: gr.Column  # the opened photo over the page (hidden until a result is opened)
    screen: gr.Image  # the opened photo, a screen-sized rendition
    close: gr.Button  # back to the results (Escape does the same)
    player: gr.Video  # a video hit, playing from its second (search_app/video_view.py)
    frame: gr.Image  # the video hit's frame, shown where the browser cannot play the video
    player_info: gr.Textbox  # hidden: the second and codec video_view.PLAY_FROM_JS reads
    player_note: gr.HTML  # why the frame stands in for the player
    panel: object  # the albums and similar-groups panel's components (ui_albums.AlbumWidgets)
    session: gr.State  # ui_session.Session of the search on screen, or None
    selected: gr.State  # image_id of the clicked result
    dates: gr.State  # False once the user removed the date chip of this query
    places: gr.State  # False once the user removed the place chip of this query
    map_apply: gr.Button  # hidden: the map's script presses it to set the drawn area as the bbox filter
    map_data: gr.Textbox  # hidden: the results' positions for the map (map_view.map_data), "" when none
    url: gr.Textbox  # the query string for the address bar (hidden)
    first_new: gr.Number  # index of the first result "Load more" added (hidden), -1 when none
    previous: gr.Button  # the viewer: the result before the open one (←, a swipe to the right)
    following: gr.Button  # the viewer: the result after the open one (→, a swipe to the left)
    zoom: gr.Button  # the viewer: "100 %", the original at full resolution
    fit: gr.Button  # the viewer: back to the photo fitted to the screen
    full: gr.Image  # the viewer: the original at full resolution, scrolled to pan

    def controls(self) -> dict:
        """Every option's component by option name (``ui.OPTION_NAMES``)."""
        return {
            **self.boxes,
            "sort": self.sort,
            "collapse": self.collapse,
            "without": self.without,
            "strong_only": self.strong,
            "dates_in_text": self.dates,
            "places_in_text": self.places,
            "show_scores": self.scores,
        }

    def outputs(self) -> list:
        """The components handlers repaint, in ``OUTPUTS``' order."""
        by_name = {
            "gallery": self.gallery,
            "status": self.status,
            "session": self.session,
            "more": self.more,
            "similar": self.similar,
            "details": self.details,
            "selected": self.selected,
            "date_chip": self.date_chip,
            "show_all": self.show_all,
            "source": self.source,
            "search": self.search,
            "original": self.original,
            "accordion": self.accordion,
            "url": self.url,
            "first_new": self.first_new,
            "query": self.query,
            "dates": self.dates,
            "upload": self.upload,
            "place_chip": self.place_chip,
            "places": self.places,
            "albums": self.panel.album_list,
            "album_zip": self.panel.album_zip,
            "viewer": self.viewer,
            "map": self.map_data,
            "area_chip": self.area_chip,
        }
        missing = [name for name in OUTPUTS if name not in by_name]
        if missing or len(by_name) != len(OUTPUTS):
            raise RuntimeError(
                f"the page and ui_reply.OUTPUTS disagree: {missing or sorted(set(by_name) - set(OUTPUTS))}"
            )
        return [by_name[name] for name in OUTPUTS]


def build_page(
    random_weights: bool,
    datalists: Callable[[], str],
    welcome: Callable[[], str],
    footer: Callable[[], str],
    panel: Callable[[], object],
    map_tiles: str | None = None,
) -> Page:
    """The components in their places (call inside ``gr.Blocks``); ``datalists``, ``welcome`` and ``footer`` are
    recomputed on each page load; ``panel`` lays out the albums and similar-groups panel; ``map_tiles``: the map's
    tile URL template (map_view)."""
    gr.HTML(INTRO, elem_id="intro")
    if random_weights:
        gr.HTML(f"<p><strong>{SMOKE_NOTICE}</strong></p>", elem_id="smoke-mode")
    with gr.Row(equal_height=False, elem_id="search_bar"):
        with gr.Column(scale=3, elem_id="search_form"):
            query = gr.Textbox(
                label="Describe the photo",
                placeholder=PLACEHOLDER,
                elem_id="query",
                max_lines=1,
                max_length=MAX_QUERY_CHARS,
            )
            without = gr.Textbox(
                label="Without… (texts to push away, comma-separated)",
                placeholder="e.g. people, text",
                elem_id="without",
                max_lines=1,
                max_length=MAX_QUERY_CHARS,
            )
            with gr.Row(elem_id="search_buttons"):
                search = gr.Button("Search", variant="primary", elem_id="search")
                clear = gr.Button("Clear", elem_id="clear")
            with gr.Row():
                date_chip = gr.Button(visible=False, elem_id="date_chip", size="sm")
                place_chip = gr.Button(visible=False, elem_id="place_chip", size="sm")
                area_chip = gr.Button(visible=False, elem_id="area_chip", size="sm")
            with gr.Accordion("Filters and sorting", open=False, elem_id="filters") as accordion:
                boxes = {
                    item.name: gr.Textbox(
                        label=item.label, placeholder=item.placeholder, elem_id=item.name, max_lines=1
                    )
                    for item in FILTERS
                }
                with gr.Row():
                    sort = gr.Radio(list(SORT_LABELS), value="Best match", label="Sort", elem_id="sort")
                    collapse = gr.Checkbox(value=True, label="Hide identical copies", elem_id="collapse")
                    strong = gr.Checkbox(value=False, label="Strong matches only", elem_id="strong_only")
                    scores = gr.Checkbox(value=False, label="Show match scores", elem_id="show_scores")
                gr.HTML(datalists, elem_id="suggestions")
        with gr.Column(scale=1, elem_id="upload_col"):
            upload = upload_image(
                label="…or search with a photo",
                type="filepath",
                image_mode=None,
                sources=["upload", "clipboard"],
                height=190,
                elem_id="upload",
            )
    status = gr.Markdown(welcome, elem_id="status")
    gr.HTML("", elem_id="examples")  # example queries in the browser's language (EXAMPLES_JS draws them)
    show_all = gr.Button("Show all", visible=False, elem_id="show_all", size="sm")
    source = gr.Image(
        label="Photos like this one", visible=False, interactive=False, height=120, elem_id="source", buttons=[]
    )
    gr.HTML(map_view.panel_html(map_tiles), elem_id="map_block", padding=False)
    map_apply = gr.Button("Apply the map area", elem_id="map_apply")
    gallery = gr.Gallery(
        label="Results",
        columns=6,
        height="auto",
        object_fit="cover",
        elem_id="results",
        allow_preview=False,
        preview=False,
        buttons=[],
        interactive=False,
    )  # opens in #viewer
    more = gr.Button("Load more", visible=False, elem_id="load_more")
    # The viewer: the opened photo at screen size over the page, its facts, and what can be done with it.
    with gr.Column(visible=False, elem_id="viewer") as viewer:  # out of the page until a result is opened
        with gr.Row(elem_id="viewer_actions"):
            close = gr.Button("← Back to results (Esc)", elem_id="viewer_close", size="sm")
            previous, following, zoom, fit = viewer_controls()  # ←/→, swipe and full resolution (VIEWER_JS)
            similar = gr.Button("More like this", visible=False, elem_id="more_like_this", size="sm")
            original = gr.DownloadButton("Download original", visible=False, elem_id="original", size="sm")
        screen = gr.Image(show_label=False, interactive=False, elem_id="viewer_image", buttons=[], container=False)
        full = gr.Image(
            show_label=False, interactive=False, elem_id="viewer_full", buttons=[], container=False, visible=False
        )  # the original at 100 %, loaded on demand ("100 %")
        player, frame, player_info, player_note = video_view.components()  # a video hit plays from its second
        details = gr.Markdown(elem_id="details")
    widgets = panel()
    gr.Markdown(footer, elem_id="footer")  # a callable: recounted on each page load, after a build
    return Page(
        query=query,
        without=without,
        search=search,
        clear=clear,
        date_chip=date_chip,
        place_chip=place_chip,
        area_chip=area_chip,
        accordion=accordion,
        boxes=boxes,
        sort=sort,
        collapse=collapse,
        strong=strong,
        scores=scores,
        upload=upload,
        status=status,
        show_all=show_all,
        source=source,
        gallery=gallery,
        similar=similar,
        original=original,
        more=more,
        details=details,
        viewer=viewer,
        screen=screen,
        close=close,
        player=player,
        frame=frame,
        player_info=player_info,
        player_note=player_note,
        panel=widgets,
        session=gr.State(None),
        selected=gr.State(None),
        dates=gr.State(True),
        places=gr.State(True),
        map_apply=map_apply,
        map_data=gr.Textbox(visible=False, elem_id="map_data"),
        previous=previous,
        following=following,
        zoom=zoom,
        fit=fit,
        full=full,
        url=gr.Textbox(visible=False, elem_id="url_state"),
        first_new=gr.Number(visible=False, value=-1, elem_id="first_new"),
    )
