// The results on a map (search_app/map_view.py describes it). Loaded by the page's script; loads Leaflet (served
// beside this file) the first time the Map button is pressed. The server hands over the map's data as JSON after
// each search (window.photoSearchMap); a drawn or visible area goes back through the hidden #map_apply button.
(() => {
  if (window.photoSearchMap) return;
  const base = new URL('.', document.currentScript ? document.currentScript.src : location.href).href;
  let data = {markers: [], count: 0, bbox: null, near: null};
  let map = null, layer = null, drawing = false, start = null, sketch = null, leaflet = null;
  const $ = (id) => document.getElementById(id);
  const AREA = {color: '#1d4ed8', weight: 2, fillOpacity: 0.05, interactive: false};

  const load = () => leaflet || (leaflet = new Promise((resolve, reject) => {
    const css = document.createElement('link');
    css.rel = 'stylesheet';
    css.href = base + 'leaflet/leaflet.css';
    document.head.appendChild(css);
    const script = document.createElement('script');
    script.src = base + 'leaflet/leaflet.js';
    script.onload = () => resolve(window.L);
    script.onerror = () => reject(new Error('Leaflet did not load'));
    document.head.appendChild(script);
  }));

  const note = (text) => {
    const node = $('map_note');
    if (node && text) { node.textContent = text; node.hidden = false; }
  };

  const create = (L) => {
    const config = JSON.parse($('map_box').dataset.map);
    L.Icon.Default.imagePath = base + 'leaflet/images/';
    map = L.map('map', {worldCopyJump: true, boxZoom: false}).setView([20, 0], 2);
    if (config.tiles === 'none') {
      $('map').classList.add('no-tiles');
    } else {
      // Offline (or a tile server that refuses): a plain background, the note, and the markers as ever.
      let loaded = 0, failed = false;
      const tiles = L.tileLayer(config.tiles, {attribution: config.attribution, maxZoom: 19});
      tiles.on('tileload', () => { loaded += 1; });
      tiles.on('tileerror', () => {
        if (loaded || failed) return;
        failed = true;
        $('map').classList.add('no-tiles');
        note(config.failed);
      });
      tiles.addTo(map);
    }
    layer = L.layerGroup().addTo(map);
    // Drawing: pointer events (a mouse, a pen or a finger), caught before the markers and Leaflet's own handlers.
    const container = map.getContainer();
    const stop = () => {
      start = null;
      if (sketch) { map.removeLayer(sketch); sketch = null; }
    };
    container.addEventListener('pointerdown', (event) => {
      if (!drawing || event.button > 0) return;
      event.preventDefault();
      event.stopPropagation();
      if (container.setPointerCapture) container.setPointerCapture(event.pointerId);
      start = map.mouseEventToLatLng(event);
      sketch = L.rectangle(L.latLngBounds(start, start), AREA).addTo(map);
    }, true);
    container.addEventListener('pointermove', (event) => {
      if (start && sketch) sketch.setBounds(L.latLngBounds(start, map.mouseEventToLatLng(event)));
    }, true);
    container.addEventListener('pointerup', (event) => {
      if (!start) return;
      event.stopPropagation();
      const bounds = L.latLngBounds(start, map.mouseEventToLatLng(event));
      stop();
      draw(false);
      if (bounds.getNorth() > bounds.getSouth() && bounds.getEast() > bounds.getWest()) apply(bounds);
    }, true);
    container.addEventListener('pointercancel', () => { stop(); draw(false); }, true);
  };

  const wrap = (longitude) => ((longitude + 180) % 360 + 360) % 360 - 180;
  const fixed = (number) => String(Math.round(number * 1e5) / 1e5);

  // An area of the map -> the bbox filter (west,south,east,north; west > east where it crosses 180°).
  const apply = (bounds) => {
    const south = Math.max(-90, bounds.getSouth()), north = Math.min(90, bounds.getNorth());
    let west = -180, east = 180;
    if (bounds.getEast() - bounds.getWest() < 360) {
      west = wrap(bounds.getWest());
      east = wrap(bounds.getEast());
      if (east === -180) east = 180;
    }
    window.photoSearchArea = [west, south, east, north].map(fixed).join(',');
    const button = $('map_apply');
    if (button) button.click();
  };

  const draw = (on) => {
    drawing = on;
    const button = $('map_draw');
    if (button) button.setAttribute('aria-pressed', on ? 'true' : 'false');
    $('map_panel').classList.toggle('drawing', on);
    if (!map) return;
    if (on) map.dragging.disable(); else map.dragging.enable();
  };

  const open = (index) => {
    const item = document.querySelectorAll('#results .thumbnail-item')[index];
    if (item) item.click();  // as a click on its thumbnail: the viewer opens, Escape comes back
  };

  const render = () => {
    if (!map) return;
    const L = window.L;
    layer.clearLayers();
    const shown = [];
    data.markers.forEach((spot) => {
      const marker = L.marker([spot.lat, spot.lon], {alt: spot.caption, title: spot.caption, keyboard: true});
      marker.on('click', () => open(spot.i));
      marker.on('keydown', (event) => {  // a marker is focusable (Tab); Enter or Space opens it as a click does
        const key = event.originalEvent.key;
        if (key !== 'Enter' && key !== ' ') return;
        event.originalEvent.preventDefault();
        open(spot.i);
      });
      marker.addTo(layer);
      const element = marker.getElement();
      if (element) { element.dataset.result = String(spot.i); element.setAttribute('role', 'button'); }
      shown.push(L.latLng(spot.lat, spot.lon));
    });
    let bounds = shown.length ? L.latLngBounds(shown) : null;
    const grow = (more) => { bounds = bounds ? bounds.extend(more) : L.latLngBounds(more.getSouthWest(), more.getNorthEast()); };
    if (data.near) {
      const circle = L.circle([data.near[0], data.near[1]], {...AREA, radius: data.near[2] * 1000,
                                                              className: 'near-circle'}).addTo(layer);
      grow(circle.getBounds());
    }
    if (data.bbox) {
      const [west, south, east, north] = data.bbox;
      const area = L.rectangle([[south, west], [north, east < west ? east + 360 : east]],
                               {...AREA, className: 'area-rectangle'}).addTo(layer);
      grow(area.getBounds());
    }
    if (bounds) map.fitBounds(bounds.pad(0.15), {maxZoom: 14, animate: false});
    const count = $('map_count');
    if (count) {
      const all = data.count, some = data.markers.length;
      count.textContent = all ? `${some} of ${all} result${all === 1 ? '' : 's'} on screen ${some === 1 ? 'has' : 'have'} a GPS position.` : '';
    }
  };

  const show = () => load().then((L) => {
    if (!map) create(L);
    map.invalidateSize();
    render();
  });

  window.photoSearchMap = (json) => {
    try {
      data = json ? JSON.parse(json) : {markers: [], count: 0, bbox: null, near: null};
    } catch (error) {
      return;
    }
    const panel = $('map_panel');
    if (panel && !panel.hidden) show(); else render();
  };

  document.addEventListener('click', (event) => {
    const target = event.target.closest ? event.target : null;
    if (!target) return;
    if (target.closest('#map_toggle')) {
      const panel = $('map_panel'), button = $('map_toggle');
      panel.hidden = !panel.hidden;
      button.setAttribute('aria-expanded', panel.hidden ? 'false' : 'true');
      if (!panel.hidden) show().then(() => panel.scrollIntoView({block: 'nearest'}));
    } else if (target.closest('#map_draw')) {
      draw(!drawing);
    } else if (target.closest('#map_search_area') && map) {
      apply(map.getBounds());
    }
  });
  if (window.photoSearchMapData !== undefined) window.photoSearchMap(window.photoSearchMapData);
})();
