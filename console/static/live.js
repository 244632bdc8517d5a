// The live view: fetch the newest decisions every few seconds and replace
// the table's rows. Without JavaScript the page reloads itself instead.
(function () {
  "use strict";
  var rows = document.getElementById("live-rows");
  var state = document.getElementById("live-state");
  if (!rows) { return; }
  var src = rows.getAttribute("data-src");
  var open = function () {
    var ids = {};
    rows.querySelectorAll("tr[data-id] details[open]").forEach(function (d) { ids[d.closest("tr").getAttribute("data-id")] = true; });
    return ids;
  };
  var tick = function () {
    fetch(src, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status !== 200) { throw new Error("HTTP " + r.status); }
      return r.text();
    }).then(function (html) {
      var keep = open();
      rows.innerHTML = html;
      rows.querySelectorAll("tr[data-id]").forEach(function (tr) {
        if (keep[tr.getAttribute("data-id")]) { tr.querySelector("details").open = true; }
      });
      state.textContent = "updated " + new Date().toLocaleTimeString();
    }).catch(function (e) {
      state.textContent = "not updated: " + e.message;
    });
  };
  setInterval(tick, 3000);
})();
