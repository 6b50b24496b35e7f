// The start page: streams to monitor, then the monitor page with Hystrix's `?streams=` form
// (spec §5.1): encodeURIComponent(JSON.stringify([{name, stream, auth, delay}, ...])).
'use strict';

(function () {
  const rows = document.getElementById('rows');
  const error = document.getElementById('form-error');

  function input(cls, placeholder, value, type) {
    const el = document.createElement('input');
    el.className = cls;
    el.type = type || 'text';
    el.placeholder = placeholder;
    el.value = value || '';
    return el;
  }

  function addRow(spec) {
    spec = spec || {};
    const row = document.createElement('div');
    row.className = 'row stream-row';
    const remove = document.createElement('button');
    remove.type = 'button';
    remove.textContent = '\u2715';
    remove.title = 'Remove this stream';
    remove.addEventListener('click', () => {
      row.remove();
      if (!rows.children.length) addRow();
    });
    row.append(
      input('stream', 'http://hostname:port/turbine.stream?cluster=default', spec.stream, 'text'),
      input('title', 'Title', spec.name),
      input('delay', '2000', spec.delay, 'number'),
      input('auth', 'Basic Zm9vOmJhcg==', spec.auth),
      remove,
    );
    rows.append(row);
    return row;
  }

  function specs() {
    const out = [];
    for (const row of rows.querySelectorAll('.stream-row')) {
      const stream = row.querySelector('.stream').value.trim();
      if (!stream) continue;
      const spec = { name: row.querySelector('.title').value.trim(), stream };
      const delay = row.querySelector('.delay').value.trim();
      const auth = row.querySelector('.auth').value.trim();
      if (delay) spec.delay = delay;
      if (auth) spec.auth = auth;
      out.push(spec);
    }
    return out;
  }

  function monitorUrl(list) {
    return '/monitor?streams=' + encodeURIComponent(JSON.stringify(list));
  }

  document.getElementById('add-stream').addEventListener('click', () => {
    addRow().querySelector('.stream').focus();
  });

  document.getElementById('streams-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const list = specs();
    if (!list.length) {
      error.textContent = 'Enter the URL of at least one stream.';
      return;
    }
    for (const spec of list) {
      if (spec.delay && !/^\d+$/.test(spec.delay)) {
        error.textContent = 'The delay of ' + spec.stream + ' is not a number of milliseconds.';
        return;
      }
    }
    location.href = monitorUrl(list);
  });

  addRow();

  // The embedded turbine's clusters and the proxy's origins, as quick links.
  fetch('/dashboard.json')
    .then((r) => (r.ok ? r.json() : null))
    .then((info) => {
      if (!info) return;
      const clusters = document.getElementById('clusters');
      for (const cluster of info.clusters || []) {
        const li = document.createElement('li');
        const a = document.createElement('a');
        a.href = monitorUrl([{ name: cluster.name, stream: cluster.stream }]);
        a.textContent = cluster.name;
        li.append(a, ' \u2014 ' + cluster.instances + ' instance(s), ' + cluster.stream);
        clusters.append(li);
      }
      document.getElementById('quick').hidden = !clusters.children.length;
      if (clusters.children.length && !rows.querySelector('.stream').value) {
        rows.querySelector('.stream').value = info.clusters[0].stream;
      }
      const origins = document.getElementById('origins');
      for (const origin of info.allow || []) {
        const li = document.createElement('li');
        li.textContent = origin;
        origins.append(li);
      }
      document.getElementById('allowed').hidden = !origins.children.length;
    })
    .catch(() => {});
})();
