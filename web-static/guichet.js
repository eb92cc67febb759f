// Guichet — progressive enhancements only: every page works without this file.
(function () {
  "use strict";
  // "all / none" for the status boxes of the list's criteria.
  document.querySelectorAll("[data-toggles]").forEach(function (box) {
    box.hidden = false;
    box.addEventListener("click", function (e) {
      var which = e.target.getAttribute("data-check");
      if (!which) return;
      box.closest("fieldset").querySelectorAll("input[type=checkbox]").forEach(function (c) {
        c.checked = which === "all";
      });
    });
  });
  // Times in the reader's own time zone.
  document.querySelectorAll("time[datetime]").forEach(function (t) {
    var d = new Date(t.getAttribute("datetime"));
    if (!isNaN(d)) t.textContent = d.toLocaleString(document.documentElement.lang, { dateStyle: "short", timeStyle: "short" });
  });
  // A mail's formatted version: the frame takes the height of its content (same origin, no script inside).
  function fit(frame) {
    try {
      var h = frame.contentDocument && frame.contentDocument.documentElement.scrollHeight;
      if (h) frame.style.height = Math.min(h + 24, 2000) + "px";
    } catch (e) { /* keep the fixed height */ }
  }
  document.querySelectorAll("details.html iframe").forEach(function (f) {
    f.addEventListener("load", function () { fit(f); });
    f.closest("details").addEventListener("toggle", function () { fit(f); });
  });
})();
