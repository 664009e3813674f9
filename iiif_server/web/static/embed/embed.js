/* The embeds' viewer (iiif_server/web/embed.py): OpenSeadragon with our own buttons, page
   navigation, the smallest tile format the browser decodes, and Content State 1.0 views; or
   Mirador (?viewer=mirador). Everything it needs comes in the page's JSON data block
   (#embed-data): no inline script, no inline handlers (the page's CSP allows neither).
   window.iiifEmbed holds the state the tests and bench/embed_weight.py read. */
(function () {
  "use strict";

  // 2x2 images made with libvips (heifsave AV1, webpsave): if the browser decodes them, it takes tiles in that format.
  var PROBES = {
    avif: "data:image/avif;base64,AAAAHGZ0eXBhdmlmAAAAAG1pZjFhdmlmbWlhZgAAANZtZXRhAAAAAAAAACFoZGxyAAAAAAAAAABwaWN0AAAAAAAAAAAAAAAAAAAAACJpbG9jAAAAAERAAAEAAQAAAAAA+gABAAAAAAAAACUAAAAjaWluZgAAAAAAAQAAABVpbmZlAgAAAAABAABhdjAxAAAAAA5waXRtAAAAAAABAAAAVmlwcnAAAAA4aXBjbwAAAAxhdjFDgQAMAAAAABRpc3BlAAAAAAAAAAIAAAACAAAAEHBpeGkAAAAAAwgICAAAABZpcG1hAAAAAAAAAAEAAQOBAgMAAAAtbWRhdBIACggYADaICGg0IDIXGUeHhiGHnnnmgkAAkEER1DEavmfwJXg=",
    webp: "data:image/webp;base64,UklGRjgAAABXRUJQVlA4ICwAAACwAQCdASoCAAIAAsBMJaACdLoAAAAAAOyPwrFP8W0joUyH/xDnEFtR1iAAAA=="
  };
  var STORE = "iiif-embed-decodes"; // sessionStorage: the probes' answers, asked once per tab

  var data = JSON.parse(document.getElementById("embed-data").textContent);
  var state = window.iiifEmbed = {
    ready: false, canvas: -1, format: null, decodes: null, viewer: null, shared: null,
    firstTileDrawn: null, errors: []
  };

  function decodes(uri) {
    return new Promise(function (resolve) {
      var image = new Image();
      image.onload = function () { resolve(image.naturalWidth === 2); };
      image.onerror = function () { resolve(false); };
      image.src = uri;
    });
  }

  function storage() {
    try { return window.sessionStorage; } catch (e) { return null; } // blocked in some third-party frames
  }

  function decodable() {
    var store = storage();
    try {
      var kept = store && JSON.parse(store.getItem(STORE) || "null");
      if (kept && typeof kept.avif === "boolean") return Promise.resolve(kept);
    } catch (e) { /* a value we did not write: ask again */ }
    return Promise.all([decodes(PROBES.avif), decodes(PROBES.webp)]).then(function (found) {
      var answer = { avif: found[0], webp: found[1], jpg: true, png: true };
      try { if (store) store.setItem(STORE, JSON.stringify(answer)); } catch (e) { /* full or blocked */ }
      return answer;
    });
  }

  /* The formats to offer OpenSeadragon, best first: [site] embed_formats that the image's info.json
     lists (jpg always: Image API level 0), then jpg. OSD takes the first its own table says the
     browser decodes, so the table is set from the probes. */
  function preferred(info) {
    var listed = ["jpg"].concat(info.extraFormats || [], info.preferredFormats || []);
    var order = data.formats.filter(function (f) { return listed.indexOf(f) >= 0; });
    if (order.indexOf("jpg") < 0) order.push("jpg");
    return order;
  }

  var infos = {};
  function info(url) {
    if (!infos[url]) {
      infos[url] = fetch(url, { headers: { Accept: "application/ld+json" } }).then(function (response) {
        if (!response.ok) throw new Error("info.json " + response.status);
        return response.json();
      });
    }
    return infos[url];
  }

  function text(key) { return data.texts[key] || ""; }

  // ---- OpenSeadragon ------------------------------------------------------------------------

  var viewer = null;
  var pendingRegion = null;

  function control(action) { return document.querySelector('[data-action="' + action + '"]'); }

  function item() { return viewer && viewer.world.getItemAt(0); }

  /* canvas pixels -> image pixels of the tile source (the preview tier is smaller than its canvas) */
  function scale() {
    var page = data.canvases[state.canvas];
    var size = item().getContentSize();
    return page.width ? size.x / page.width : 1;
  }

  function fitRegion(region) {
    var s = scale();
    var rect = new OpenSeadragon.Rect(region[0] * s, region[1] * s, region[2] * s, region[3] * s);
    viewer.viewport.fitBounds(item().imageToViewportRectangle(rect), true);
  }

  /* The visible part of the current canvas, in canvas pixels, clamped to it: [x, y, w, h]. */
  function visibleRegion() {
    var s = scale();
    var size = item().getContentSize();
    var width = Math.round(size.x / s), height = Math.round(size.y / s);
    var r = item().viewportToImageRectangle(viewer.viewport.getBounds()); // where it is going: after an animation
    var x0 = Math.max(0, Math.round(r.x / s)), y0 = Math.max(0, Math.round(r.y / s));
    var x1 = Math.min(width, Math.round((r.x + r.width) / s)), y1 = Math.min(height, Math.round((r.y + r.height) / s));
    return [x0, y0, Math.max(1, x1 - x0), Math.max(1, y1 - y0)];
  }

  function open(index, region) {
    if (index < 0 || index >= data.canvases.length || index === state.canvas) return;
    state.canvas = index;
    state.ready = false;
    pendingRegion = region || null;
    var page = data.canvases[index];
    var status = document.getElementById("page-status");
    if (status) status.textContent = (index + 1) + " / " + data.canvases.length;
    var previous = control("previous"), next = control("next");
    if (previous) previous.disabled = index === 0;
    if (next) next.disabled = index === data.canvases.length - 1;
    Promise.all([info(page.info), decodable()]).then(function (found) {
      if (state.canvas !== index) return; // another page was asked for meanwhile
      var source = Object.assign({}, found[0]);
      state.decodes = found[1];
      OpenSeadragon.setImageFormatsSupported({ avif: found[1].avif, webp: found[1].webp });
      source.preferredFormats = preferred(source);
      viewer.open(source);
    }).catch(function (error) { state.errors.push(String(error)); });
  }

  function share() {
    var page = data.canvases[state.canvas];
    var region = visibleRegion();
    var link = data.item + "?iiif-content=" + encodeContentState(data.manifest, page.id, region);
    state.shared = link;
    var panel = document.getElementById("share-panel");
    var field = document.getElementById("share-url");
    var status = document.getElementById("share-status");
    panel.hidden = false;
    control("share").setAttribute("aria-expanded", "true");
    field.value = link;
    field.focus();
    field.select();
    var done = function () { status.textContent = text("copied"); };
    var hint = function () { status.textContent = text("copy_hint"); };
    // In a frame the Clipboard API needs allow="clipboard-write" (else Chromium logs a policy
    // violation); without it, the selected field is copied the old way, or the visitor copies it.
    var policy = document.permissionsPolicy || document.featurePolicy;
    var allowed = navigator.clipboard && window.isSecureContext && (!policy || policy.allowsFeature("clipboard-write"));
    if (allowed) { navigator.clipboard.writeText(link).then(done, hint); return; }
    var copied = false;
    try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
    (copied ? done : hint)();
  }

  function toggleFullScreen() {
    var root = document.querySelector(".embed-main");
    var done = document.fullscreenElement ? document.exitFullscreen() : (root.requestFullscreen ? root.requestFullscreen() : null);
    if (done && done.catch) done.catch(function () { /* refused (a frame without allow="fullscreen") */ });
  }

  function startOpenSeadragon() {
    var element = document.getElementById("viewer");
    viewer = state.viewer = OpenSeadragon({
      element: element,
      showNavigationControl: false, // our own buttons below, not OSD's PNGs
      showSequenceControl: false,
      drawer: "canvas", // raises tile-drawn (the WebGL drawer does not)
      crossOriginPolicy: false,
      preserveImageSizeOnResize: true
    });
    var canvas = element.querySelector(".openseadragon-canvas");
    if (canvas) {
      canvas.setAttribute("role", "application");
      canvas.setAttribute("aria-label", element.getAttribute("data-label"));
      canvas.tabIndex = 0;
    }
    viewer.addHandler("open", function () {
      var source = item().source;
      state.format = source.tileFormat;
      if (pendingRegion) fitRegion(pendingRegion);
      pendingRegion = null;
      state.ready = true;
    });
    viewer.addHandler("open-failed", function (event) { state.errors.push(String(event.message)); });
    viewer.addHandler("tile-drawn", function () {
      if (state.firstTileDrawn === null) state.firstTileDrawn = performance.now();
    });
    var actions = {
      "zoom-in": function () { viewer.viewport.zoomBy(1.5); viewer.viewport.applyConstraints(); },
      "zoom-out": function () { viewer.viewport.zoomBy(1 / 1.5); viewer.viewport.applyConstraints(); },
      "home": function () { viewer.viewport.goHome(); },
      "full-screen": toggleFullScreen,
      "previous": function () { open(state.canvas - 1); },
      "next": function () { open(state.canvas + 1); },
      "share": share
    };
    Object.keys(actions).forEach(function (name) {
      var button = control(name);
      if (button) button.addEventListener("click", actions[name]);
    });
    document.addEventListener("fullscreenchange", function () {
      var button = control("full-screen");
      if (button) button.setAttribute("aria-pressed", document.fullscreenElement ? "true" : "false");
    });
    document.addEventListener("keydown", function (event) {
      if (event.target && event.target.tagName === "INPUT") return;
      if (event.key === "PageDown") { open(state.canvas + 1); event.preventDefault(); }
      if (event.key === "PageUp") { open(state.canvas - 1); event.preventDefault(); }
    });
    var start = data.start || { canvas: 0, region: null };
    open(Math.min(Math.max(start.canvas || 0, 0), data.canvases.length - 1), start.region);
  }

  // ---- Content State 1.0: exactly what iiif_server/web/contentstate.py encode writes -------
  // the target body alone (spec §3.1), compact JSON with keys in this order, encodeURIComponent,
  // base64url, no padding (§6.1)

  function encodeContentState(manifestId, canvasId, region) {
    var target = { id: canvasId + "#xywh=" + region.join(","), type: "Canvas", partOf: [{ id: manifestId, type: "Manifest" }] };
    var encoded = btoa(encodeURIComponent(JSON.stringify(target)));
    return encoded.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  state.encodeContentState = encodeContentState;
  state.visibleRegion = function () { return visibleRegion(); };

  // ---- Mirador ------------------------------------------------------------------------------

  function startMirador() {
    var start = data.start || { canvas: 0 };
    var canvas = data.canvases[start.canvas || 0];
    var windowConfig = { manifestId: data.manifest };
    if (canvas) windowConfig.canvasId = canvas.id;
    state.viewer = Mirador.viewer({
      id: "viewer",
      language: data.language,
      windows: [windowConfig],
      window: { allowClose: false, allowMaximize: false, allowFullscreen: true, sideBarOpen: false, defaultView: "single" },
      workspace: { allowNewWindows: false },
      workspaceControlPanel: { enabled: false }
    });
    state.ready = true;
  }

  if (data.viewer === "mirador") startMirador();
  else startOpenSeadragon();
})();
