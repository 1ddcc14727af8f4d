// The parents' wallet page: talks to /api/v1/wallet with the session token kept in
// localStorage. Texts come from the page (#i18n) in the language the server rendered.
(function () {
  'use strict';
  var T = JSON.parse(document.getElementById('i18n').textContent);
  var SESSION = 'tamaq_session';
  var KZ_OFFSET = 5 * 3600;
  var session = null;
  var phone = '';
  var vouchers = [];
  var qrTimer = null;
  var qrRenew = null;

  function $(id) { return document.getElementById(id); }

  function store(key, value) {
    try {
      if (value === null) { localStorage.removeItem(key); } else { localStorage.setItem(key, value); }
    } catch (e) { /* private mode: the session lasts as long as the page */ }
  }
  function load(key) {
    try { return localStorage.getItem(key); } catch (e) { return null; }
  }

  // Builds an element: el('p', {class: 'x'}, ['text', child]).
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === 'text') { e.textContent = attrs[k]; } else if (attrs[k] !== false) { e.setAttribute(k, attrs[k]); }
    });
    (children || []).forEach(function (c) {
      e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }

  function say(text, isError) {
    var s = $('status');
    s.textContent = text || '';
    s.className = 'notice' + (isError ? ' error' : ' ok');
    s.setAttribute('role', isError ? 'alert' : 'status');
    s.hidden = !text;
  }

  async function api(method, path, body) {
    var opts = { method: method, headers: {} };
    if (session) { opts.headers.Authorization = 'Bearer ' + session; }
    if (body !== undefined) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    var r = await fetch('/api/v1' + path, opts);
    if (r.status === 204) { return null; }
    var data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (r.ok) { return data; }
    var code = data && data.error && data.error.code;
    if (r.status === 401 && session) { signedOut(); }
    var err = new Error(T['err_' + code] || (data && data.error && data.error.message) || T.error_generic);
    err.code = code;
    throw err;
  }

  // Runs an action with its button disabled, showing failures in the status line.
  async function busy(button, action) {
    if (button) { button.disabled = true; }
    try { await action(); } catch (e) { say(e.message, true); } finally {
      if (button) { button.disabled = false; }
    }
  }

  function two(n) { return (n < 10 ? '0' : '') + n; }
  function localParts(ts) { return new Date((ts + KZ_OFFSET) * 1000); }
  function dateText(ts) {
    var d = localParts(ts);
    return two(d.getUTCDate()) + '.' + two(d.getUTCMonth() + 1) + '.' + d.getUTCFullYear();
  }
  function timeText(ts) {
    var d = localParts(ts);
    return two(d.getUTCHours()) + ':' + two(d.getUTCMinutes());
  }
  function isoDateText(iso) {
    var p = iso.split('-');
    return p[2] + '.' + p[1] + '.' + p[0];
  }
  function todayIso() {
    var d = localParts(Math.floor(Date.now() / 1000));
    return d.getUTCFullYear() + '-' + two(d.getUTCMonth() + 1) + '-' + two(d.getUTCDate());
  }
  function left(seconds) {
    seconds = Math.max(0, Math.ceil(seconds));
    var h = Math.floor(seconds / 3600), m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    return (h ? h + ':' + two(m) : m) + ':' + two(s);
  }

  // ---- signing in -------------------------------------------------------------------------

  function showLogin() {
    $('home').hidden = true;
    closePanel();
    $('login').hidden = false;
    $('phone-form').hidden = false;
    $('code-form').hidden = true;
    $('phone').focus();
  }

  function signedOut() {
    session = null;
    store(SESSION, null);
    showLogin();
  }

  $('phone-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    say('');
    busy($('get-code'), async function () {
      var p = $('phone').value;
      await api('POST', '/wallet/login', { phone: p });
      phone = p;
      $('phone-form').hidden = true;
      $('code-form').hidden = false;
      $('code').value = '';
      $('code').focus();
    });
  });

  $('code-form').addEventListener('submit', function (ev) {
    ev.preventDefault();
    say('');
    busy($('sign-in'), async function () {
      var r = await api('POST', '/wallet/login/verify', { phone: phone, code: $('code').value });
      session = r.session_token;
      store(SESSION, session);
      $('login').hidden = true;
      await showHome();
    });
  });

  $('other-number').addEventListener('click', function () { say(''); showLogin(); });

  $('logout').addEventListener('click', function () {
    busy($('logout'), async function () {
      try { await api('POST', '/wallet/logout'); } finally { signedOut(); }
    });
  });

  // ---- vouchers ---------------------------------------------------------------------------

  async function showHome() {
    $('home').hidden = false;
    var list = $('vouchers');
    list.setAttribute('aria-busy', 'true');
    vouchers = await api('GET', '/wallet/vouchers');
    list.textContent = '';
    list.setAttribute('aria-busy', 'false');
    if (!vouchers.length) {
      list.appendChild(el('p', { class: 'empty', text: T.no_vouchers }));
    }
    // Grouped by school year, newest first (the API's order): this year's voucher above last
    // year's expired one, each with its own history.
    var year = null;
    vouchers.forEach(function (v) {
      if (v.school_year !== year) {
        year = v.school_year;
        list.appendChild(el('h3', { class: 'year', text: year.replace('-', '–') + ' ' + T.school_year }));
      }
      list.appendChild(card(v));
    });
  }

  // What a parent reads under a voucher that no longer works: why, and what to do.
  function note(v) {
    if (v.status === 'revoked') {
      return el('p', { class: 'note', 'data-reason': v.revoke_reason || '' }, [
        T['revoked_' + v.revoke_reason] || T.revoked_other
      ]);
    }
    if (v.status === 'expired') { return el('p', { class: 'note', text: T.expired_note }); }
    return null;
  }

  function action(name, v, label, primary) {
    var b = el('button', {
      type: 'button',
      class: primary ? 'primary' : 'secondary',
      'data-action': name,
      'data-voucher': v.voucher_id,
      text: label
    });
    b.addEventListener('click', function () { actions[name](v, b); });
    return b;
  }

  function card(v) {
    var buttons = [];
    if (v.status === 'issued') { buttons.push(action('activate', v, T.activate, true)); }
    if (v.status === 'active') {
      buttons.push(action('qr', v, T.show_qr, true));
      buttons.push(action('share', v, T.send_child, false));
    }
    buttons.push(action('history', v, T.history, false));
    // Rating is about today's canteen; a complaint may be about a revoked voucher too.
    if (v.status === 'issued' || v.status === 'active') {
      buttons.push(action('rate', v, T.rate, false));
    }
    if (v.status !== 'expired') {
      buttons.push(action('complain', v, T.complain, false));
    }
    var parts = [
      el('h4', { text: v.pupil_name }),
      el('p', { text: v.school_name }),
      el('p', { text: T['class'] + ': ' + v.grade + v.class_letter + ' · ' + v.school_year }),
      el('p', { text: T.valid + ': ' + isoDateText(v.valid_from) + ' – ' + isoDateText(v.valid_to) }),
      el('p', { class: 'badge status-' + v.status, text: T['status_' + v.status] || v.status })
    ];
    var why = note(v);
    if (why) { parts.push(why); }
    parts.push(el('div', { class: 'actions' }, buttons));
    return el('article', { class: 'card', 'data-voucher': v.voucher_id, 'data-status': v.status }, parts);
  }

  // ---- the panel below the vouchers ------------------------------------------------------

  function openPanel(title, nodes) {
    stopQr();
    $('panel-title').textContent = title;
    var body = $('panel-body');
    body.textContent = '';
    nodes.forEach(function (n) { body.appendChild(n); });
    $('panel').hidden = false;
    $('panel-title').focus();
  }

  function closePanel() {
    stopQr();
    $('panel').hidden = true;
    $('panel-body').textContent = '';
  }

  $('panel-close').addEventListener('click', closePanel);

  function stopQr() {
    if (qrTimer) { clearInterval(qrTimer); qrTimer = null; }
    if (qrRenew) { clearTimeout(qrRenew); qrRenew = null; }
  }

  // Shows a fresh short-lived code and renews it shortly before it expires, for as long as
  // the panel stays open.
  async function showQr(v) {
    var q = await api('POST', '/wallet/vouchers/' + v.voucher_id + '/qr', { validity: 'short' });
    var figure = $('qr');
    if (!figure) { return; }
    stopQr();
    figure.innerHTML = q.svg;
    figure.setAttribute('data-expires-at', q.expires_at);
    var lifetime = q.expires_at - q.issued_at;
    var deadline = Date.now() + lifetime * 1000;
    var tick = function () { $('qr-left').textContent = left((deadline - Date.now()) / 1000); };
    tick();
    qrTimer = setInterval(tick, 1000);
    var renewIn = Math.max(5, lifetime - Math.min(30, Math.floor(lifetime / 4)));
    qrRenew = setTimeout(function () {
      $('qr-left').textContent = T.renewing;
      showQr(v).catch(function (e) { say(e.message, true); });
    }, renewIn * 1000);
  }

  async function share(v, button) {
    var q = await api('POST', '/wallet/vouchers/' + v.voucher_id + '/qr', { validity: 'today' });
    var url = location.origin + '/q/' + q.token;
    if (navigator.share) {
      try {
        await navigator.share({ title: T.share_title, text: T.share_text, url: url });
        return;
      } catch (e) {
        if (e && e.name === 'AbortError') { return; }
      }
    }
    var input = el('input', { id: 'share-link', type: 'url', readonly: 'readonly', value: url });
    var copy = el('button', { type: 'button', class: 'primary', text: T.copy });
    copy.addEventListener('click', function () {
      input.select();
      var done = function () { say(T.link_copied); };
      if (navigator.clipboard) {
        navigator.clipboard.writeText(url).then(done, function () { document.execCommand('copy'); done(); });
      } else { document.execCommand('copy'); done(); }
    });
    openPanel(T.send_child + ' — ' + v.pupil_name, [
      el('label', { for: 'share-link', text: T.share_link_label }),
      input,
      copy,
      el('p', { class: 'hint', text: T.until + ' ' + timeText(q.expires_at) })
    ]);
    if (button) { button.focus(); }
  }

  var actions = {
    activate: function (v, b) {
      busy(b, async function () {
        await api('POST', '/wallet/vouchers/' + v.voucher_id + '/activate');
        say(T.activated);
        await showHome();
      });
    },
    qr: function (v, b) {
      busy(b, async function () {
        openPanel(T.qr_title + ' — ' + v.pupil_name, [
          el('figure', { id: 'qr', class: 'qr', 'aria-label': T.qr_title }),
          el('p', { class: 'countdown', 'aria-live': 'off' }, [T.expires_in + ' ', el('strong', { id: 'qr-left' })]),
          el('p', { class: 'hint', text: T.qr_hint }),
          action('share', v, T.send_child, false)
        ]);
        await showQr(v);
      });
    },
    share: function (v, b) { busy(b, function () { return share(v, b); }); },
    history: function (v, b) {
      busy(b, async function () {
        var meals = await api('GET', '/wallet/vouchers/' + v.voucher_id + '/history');
        var items = meals.map(function (m) {
          return el('li', {}, [
            el('strong', { text: dateText(m.served_at) + ' ' + timeText(m.served_at) }),
            ' · ' + (T['meal_' + m.meal_kind] || m.meal_kind) + ' · ' + m.school_name
          ]);
        });
        openPanel(T.history + ' — ' + v.pupil_name, items.length
          ? [el('ol', { class: 'history' }, items)]
          : [el('p', { class: 'empty', text: T.history_empty })]);
      });
    },
    rate: function (v, b) {
      busy(b, async function () {
        var mine = await api('GET', '/wallet/ratings?voucher_id=' + encodeURIComponent(v.voucher_id));
        var today = mine.filter(function (r) { return r.service_day === todayIso(); })[0];
        var stars = [1, 2, 3, 4, 5].map(function (n) {
          var id = 'star-' + n;
          return el('span', { class: 'star' }, [
            el('input', { type: 'radio', name: 'stars', id: id, value: String(n), checked: today && today.stars === n ? 'checked' : false }),
            el('label', { for: id, 'aria-label': n + ' ' + T.star, text: '★ ' + n })
          ]);
        });
        var comment = el('textarea', { id: 'rating-comment', rows: '3', maxlength: '1000' });
        comment.value = today && today.comment ? today.comment : '';
        var submit = el('button', { type: 'submit', class: 'primary', text: T.save });
        var form = el('form', { id: 'rating-form' }, [
          el('fieldset', {}, [el('legend', { text: T.stars_label }), el('div', { class: 'stars' }, stars)]),
          el('label', { for: 'rating-comment', text: T.comment_label }),
          comment,
          submit
        ]);
        form.addEventListener('submit', function (ev) {
          ev.preventDefault();
          var chosen = form.querySelector('input[name=stars]:checked');
          busy(submit, async function () {
            await api('POST', '/wallet/ratings', {
              voucher_id: v.voucher_id,
              stars: chosen ? Number(chosen.value) : 0,
              comment: comment.value
            });
            say(T.rating_saved);
          });
        });
        openPanel(T.rate + ' — ' + v.school_name, [form]);
      });
    },
    complain: function (v, b) {
      busy(b, async function () {
        var text = el('textarea', { id: 'complaint-text', rows: '5', maxlength: '4000', required: 'required' });
        var submit = el('button', { type: 'submit', class: 'primary', text: T.send });
        var list = el('ul', { id: 'complaints', class: 'complaints' });
        var form = el('form', { id: 'complaint-form' }, [
          el('p', { class: 'hint', text: T.complaint_note }),
          el('label', { for: 'complaint-text', text: T.complaint_label }),
          text,
          submit
        ]);
        var refresh = async function () {
          var all = await api('GET', '/wallet/complaints');
          list.textContent = '';
          all.filter(function (c) { return c.voucher_id === v.voucher_id; }).forEach(function (c) {
            list.appendChild(el('li', { 'data-status': c.status }, [
              el('strong', { text: dateText(c.created_at) + ' · ' + T['c_status_' + c.status] }),
              el('p', { text: c.text })
            ]));
          });
        };
        form.addEventListener('submit', function (ev) {
          ev.preventDefault();
          busy(submit, async function () {
            await api('POST', '/wallet/complaints', { voucher_id: v.voucher_id, text: text.value });
            text.value = '';
            say(T.complaint_queued);
            await refresh();
          });
        });
        openPanel(T.complain + ' — ' + v.school_name, [form, el('h3', { text: T.complaints }), list]);
        await refresh();
      });
    }
  };

  // ---- language ---------------------------------------------------------------------------

  function setLang(lang) {
    document.cookie = 'tamaq_lang=' + lang + '; path=/; max-age=31536000; samesite=lax';
    store('tamaq_lang', lang);
    location.reload();
  }

  Array.prototype.forEach.call(document.querySelectorAll('button.lang'), function (b) {
    b.addEventListener('click', function () { setLang(b.getAttribute('data-lang')); });
  });

  // ---- start ------------------------------------------------------------------------------

  var saved = load('tamaq_lang');
  if (saved && saved !== document.documentElement.lang && document.cookie.indexOf('tamaq_lang=') < 0) {
    setLang(saved);
    return;
  }
  session = load(SESSION);
  if (session) {
    showHome().catch(function (e) { if (session) { say(e.message, true); } });
  } else {
    showLogin();
  }
})();
