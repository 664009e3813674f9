/* /viewer: Mirador 4 on the manifest (and view) the page's JSON data block names.
   Loaded from /assets/ (fingerprinted), so the page runs no inline script and its CSP allows none. */
(function () {
  "use strict";
  var config = JSON.parse(document.getElementById("viewer-config").textContent);
  var mirador = Mirador.viewer({
    id: "mirador",
    windows: [config.window],
    window: {allowClose: false, allowMaximize: false, allowFullscreen: true, sideBarOpen: false, defaultView: "single"},
    workspace: {allowNewWindows: false},
    workspaceControlPanel: {enabled: false}
  });
  // Mirador 4.0.0 gives OpenSeadragon an image service's tiles once (OpenSeadragonTileSource ignores a
  // later info.json of the same service), so after an Auth 1.0 login it would go on drawing the
  // preview tier, and after a logout the full one. When an info.json answer changes tier (its "id"),
  // ask for it again: the request takes the old tiles away, the answer brings the new ones.
  (function (store) {
    var tiers = {};
    store.subscribe(function () {
      var responses = Mirador.selectInfoResponses(store.getState()) || {};
      Object.keys(responses).forEach(function (infoId) {
        var response = responses[infoId];
        if (!response.json || response.isFetching) return;
        var tier = response.json.id || response.json["@id"];
        var before = tiers[infoId];
        tiers[infoId] = tier;
        if (before !== undefined && before !== tier) store.dispatch(Mirador.requestInfoResponse(infoId, response.json));
      });
    });
  })(mirador.store);
  window.mirador = mirador;  // for tests and the curious: the viewer's redux store is mirador.store
})();
