// The share page: counts down to the code's expiry and hides the code when it has expired.
// The remaining seconds come from the server, so a wrong clock on the child's phone does not
// matter.
(function () {
  'use strict';
  var left = document.getElementById('left');
  if (!left) { return; }
  var deadline = Date.now() + Number(left.getAttribute('data-remaining')) * 1000;
  function two(n) { return (n < 10 ? '0' : '') + n; }
  function tick() {
    var s = Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
    var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60);
    left.textContent = (h ? h + ':' + two(m) : m) + ':' + two(s % 60);
    if (s <= 0) {
      document.getElementById('qr').hidden = true;
      document.getElementById('expired').hidden = false;
      clearInterval(timer);
    }
  }
  var timer = setInterval(tick, 1000);
  tick();
  // Keep the screen on while the child walks to the counter, where the browser allows it.
  if (navigator.wakeLock && navigator.wakeLock.request) {
    navigator.wakeLock.request('screen').catch(function () {});
  }
})();
