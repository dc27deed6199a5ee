// Keeps the overview's live part fresh: fetch the fragment every few seconds, same origin.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live || !window.fetch) { return; }
  var seconds = parseInt(live.getAttribute("data-seconds"), 10) || 5;
  var url = live.getAttribute("data-refresh");
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) { return response.ok ? response.text() : null; })
      .then(function (html) { if (html !== null) { live.innerHTML = html; live.setAttribute("data-refreshed", String(Date.now())); } })
      .catch(function () { /* keep what is shown; try again at the next tick */ });
  }
  window.setInterval(refresh, seconds * 1000);
})();
