// autodial status page: shows times in the viewer's time zone, keeps the
// ages current, and refreshes the page's live part every 10 s. Without it
// everything works by reload (times then in UTC with their offset).
(function () {
  'use strict';
  var full = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', timeZoneName: 'short'
  });
  var clock = new Intl.DateTimeFormat(undefined, {
    hour: '2-digit', minute: '2-digit', second: '2-digit'
  });

  function ago(t, now) {
    var d = Math.abs(Math.round(now - t)), s;
    if (d < 60) { s = d + ' s'; }
    else if (d < 3600) { s = Math.floor(d / 60) + ' min'; }
    else if (d < 86400) {
      var m = Math.floor(d % 3600 / 60);
      s = Math.floor(d / 3600) + ' h' + (m ? ' ' + m + ' min' : '');
    } else { s = Math.floor(d / 86400) + ' d'; }
    return t <= now ? s + ' ago' : 'in ' + s;
  }

  function localize(root) {
    var now = Date.now() / 1000;
    root.querySelectorAll('time[data-t]').forEach(function (el) {
      if (el.id === 'updated') { return; }
      el.textContent = full.format(new Date(Number(el.dataset.t) * 1000));
    });
    root.querySelectorAll('.ago[data-t]').forEach(function (el) {
      el.textContent = '(' + ago(Number(el.dataset.t), now) + ')';
    });
  }

  function stamp(ok) {
    var u = document.getElementById('updated');
    if (!u) { return; }
    if (ok) { u.dataset.t = String(Math.floor(Date.now() / 1000)); }
    u.textContent = clock.format(new Date(Number(u.dataset.t) * 1000)) +
      (ok ? '' : ' (the last refresh failed)');
  }

  function refresh() {
    var live = document.getElementById('live');
    if (!live || !live.dataset.refresh) { return; }
    fetch(window.location.href, { credentials: 'same-origin', headers: { Accept: 'text/html' } })
      .then(function (r) {
        // signed out meanwhile (the session ended): show the sign-in page
        if (r.redirected) { window.location.reload(); return null; }
        if (!r.ok && r.status !== 404) { throw new Error(String(r.status)); }
        return r.text();
      })
      .then(function (text) {
        if (text === null) { return; }
        var doc = new DOMParser().parseFromString(text, 'text/html');
        var fresh = doc.getElementById('live');
        if (!fresh) { window.location.reload(); return; }
        live.replaceWith(document.adoptNode(fresh));
        localize(fresh);
        stamp(true);
      })
      .catch(function () { stamp(false); });
  }

  document.addEventListener('DOMContentLoaded', function () {
    localize(document);
    stamp(true);
    setInterval(refresh, 10000);
    setInterval(function () { localize(document); }, 30000);
  });
}());
