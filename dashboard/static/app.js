// conveyor dashboard: auto-refresh of counters, confirmations, selection.
// Plain JavaScript, no build step.
(function () {
  "use strict";

  // Confirm every form that asks for it. A button's data-confirm wins over
  // its form's; "{n}" is replaced by the number of selected dead letters.
  document.addEventListener("submit", function (ev) {
    var btn = ev.submitter;
    var msg = (btn && btn.dataset.confirm) || ev.target.dataset.confirm;
    if (btn && btn.hasAttribute("data-selected")) {
      var n = document.querySelectorAll('input[name="id"][form="' + ev.target.id + '"]:checked').length;
      if (n === 0) {
        ev.preventDefault();
        window.alert("Select dead letters first.");
        return;
      }
      msg = msg.replace("{n}", String(n));
    }
    if (msg && !window.confirm(msg)) {
      ev.preventDefault();
    }
  });

  // Select or clear every dead letter on the page.
  document.addEventListener("change", function (ev) {
    if (ev.target.id !== "check-all") return;
    document.querySelectorAll('input[name="id"][form="bulk"]').forEach(function (box) {
      box.checked = ev.target.checked;
    });
  });

  // Refresh every [data-refresh] element from its fragment URL, without
  // reloading the page, while the page is visible.
  var every = parseInt(document.body.dataset.refreshMs || "0", 10);
  var targets = document.querySelectorAll("[data-refresh]");
  if (!every || targets.length === 0) return;
  var live = document.getElementById("live");
  var busy = false;

  // Never swap the DOM under a pressed pointer: a click whose press and
  // release land on different (replaced) elements is lost.
  var pressed = false;
  document.addEventListener("pointerdown", function () { pressed = true; }, true);
  document.addEventListener("pointerup", function () { pressed = false; }, true);
  document.addEventListener("pointercancel", function () { pressed = false; }, true);

  function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    var jobs = Array.prototype.map.call(targets, function (el) {
      return fetch(el.dataset.refresh, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (res) {
          if (!res.ok) throw new Error(res.status + " " + res.statusText);
          return res.text();
        })
        .then(function (html) {
          if (!pressed && el.innerHTML !== html) el.innerHTML = html;
        });
    });
    Promise.all(jobs).then(function () {
      if (live) { live.classList.remove("stale"); live.textContent = "live"; live.title = "updated " + new Date().toLocaleTimeString(); }
    }, function (err) {
      if (live) { live.classList.add("stale"); live.textContent = "stale"; live.title = "refresh failed: " + err.message; }
    }).then(function () { busy = false; });
  }

  window.setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
