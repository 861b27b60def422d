// Shows each <time class="local"> in the viewer's own time zone (the server writes UTC).
(function () {
  "use strict";
  document.querySelectorAll("time.local").forEach(function (element) {
    var moment = new Date(element.getAttribute("datetime"));
    if (!isNaN(moment)) element.textContent = moment.toLocaleString(document.documentElement.lang || undefined);
  });
})();
