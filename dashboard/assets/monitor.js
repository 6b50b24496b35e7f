// The monitor page: every circuit and thread pool of one or more Hystrix / Turbine streams.
//
// Query (spec §5.1): `streams=<JSON [{name, stream, auth, delay}]>`, or
// `stream=<url>&delay=<ms>&title=<text>&authorization=<value>`; also `filter=<text>`.
// What is shown per circuit and pool, and how it is computed, follows the Hystrix Dashboard
// (spec §5.3, §5.4), except where that was wrong: rates use the per-host rolling window
// whether a turbine summed the window property (Turbine 1.x) or not (2.x), a cluster's error
// percentage is errors / requests, and mixed circuit states are counted.
'use strict';

(function () {
  const SVG = 'http://www.w3.org/2000/svg';
  const SPARK_MS = 2 * 60 * 1000; // the sparkline: 2 minutes
  const HISTORY_MS = 10 * 60 * 1000; // the detail charts: 10 minutes
  const SAMPLE_MS = 1000; // at most one history sample per second per circuit
  const EPOCH = Date.now(); // sparkline times are seconds since the page opened
  const CIRCUIT_SORT_MS = 10000;
  const POOL_SORT_MS = 1000;
  const SILENT_MS = 15000; // a stream silent this long (no data, no ping) is reopened
  const RETRY_MAX_MS = 30000;

  // Fields without which the Hystrix Dashboard drops a command event (spec §5.3).
  const COMMAND_FIELDS = [
    'reportingHosts', 'type', 'name', 'group', 'isCircuitBreakerOpen', 'errorPercentage',
    'errorCount', 'requestCount', 'rollingCountCollapsedRequests', 'rollingCountExceptionsThrown',
    'rollingCountFailure', 'rollingCountFallbackFailure', 'rollingCountFallbackRejection',
    'rollingCountFallbackSuccess', 'rollingCountResponsesFromCache', 'rollingCountSemaphoreRejected',
    'rollingCountShortCircuited', 'rollingCountSuccess', 'rollingCountThreadPoolRejected',
    'rollingCountTimeout', 'rollingCountBadRequests', 'currentConcurrentExecutionCount',
    'latencyExecute_mean', 'latencyExecute', 'propertyValue_circuitBreakerRequestVolumeThreshold',
    'propertyValue_circuitBreakerSleepWindowInMilliseconds',
    'propertyValue_circuitBreakerErrorThresholdPercentage', 'propertyValue_circuitBreakerForceOpen',
    'propertyValue_circuitBreakerForceClosed', 'propertyValue_executionIsolationStrategy',
    'propertyValue_executionIsolationThreadTimeoutInMilliseconds',
    'propertyValue_executionIsolationThreadInterruptOnTimeout',
    'propertyValue_executionIsolationSemaphoreMaxConcurrentRequests',
    'propertyValue_fallbackIsolationSemaphoreMaxConcurrentRequests',
    'propertyValue_requestCacheEnabled', 'propertyValue_requestLogEnabled',
    'propertyValue_metricsRollingStatisticalWindowInMilliseconds',
  ];
  const POOL_FIELDS = [
    'type', 'name', 'currentActiveCount', 'currentCompletedTaskCount', 'currentCorePoolSize',
    'currentLargestPoolSize', 'currentMaximumPoolSize', 'currentPoolSize', 'currentQueueSize',
    'currentTaskCount', 'rollingCountThreadsExecuted', 'rollingMaxActiveThreads', 'reportingHosts',
    'propertyValue_queueSizeRejectionThreshold',
    'propertyValue_metricsRollingStatisticalWindowInMilliseconds',
  ];

  // ---- Numbers as streams send them -------------------------------------------------------

  // A number from a JSON number or a numeric string (Turbine 1.x sends floats as strings).
  function num(v) {
    if (typeof v === 'number') return v;
    if (typeof v === 'string' && v.trim() !== '' && !isNaN(v)) return Number(v);
    return NaN;
  }

  // A value counted over hosts: a JSON object, or a string holding one (Turbine 1.x sends
  // `"{\"false\":2,\"true\":1}"`, Turbine 2.x the object itself).
  function countsOf(v) {
    if (v && typeof v === 'object') return v;
    if (typeof v === 'string' && v.charAt(0) === '{') {
      try {
        const parsed = JSON.parse(v);
        if (parsed && typeof parsed === 'object') return parsed;
      } catch (e) {
        return null;
      }
    }
    return null;
  }

  // A property's value per host. A number is a Turbine 1.x sum over the hosts (or one host's
  // value); a numeric string is Turbine 2.x's single value; counts of several values give
  // their mean weighted by hosts.
  function perHost(v, hosts) {
    if (typeof v === 'number') return v / hosts;
    const n = num(v);
    if (!isNaN(n)) return n;
    const counts = countsOf(v);
    if (!counts) return NaN;
    let sum = 0;
    let weight = 0;
    for (const key of Object.keys(counts)) {
      const value = num(key);
      const times = num(counts[key]);
      if (isNaN(value) || isNaN(times)) continue;
      sum += value * times;
      weight += times;
    }
    return weight > 0 ? sum / weight : NaN;
  }

  // How many hosts said true and false, from a boolean, a count of trues (Turbine 1.x sums
  // of 0/1), a string or counts.
  function yesNo(v, hosts) {
    if (v === true || v === 'true') return { yes: hosts, no: 0 };
    if (v === false || v === 'false' || v === null || v === undefined || v === '') {
      return { yes: 0, no: hosts };
    }
    if (typeof v === 'number') return { yes: v, no: Math.max(0, hosts - v) };
    const counts = countsOf(v);
    if (counts) {
      return { yes: num(counts['true']) || 0, no: num(counts['false']) || 0 };
    }
    return { yes: 0, no: hosts };
  }

  // One decimal, as Hystrix's roundNumber, without a trailing ".0".
  function round1(x) {
    if (!isFinite(x)) return '0';
    const r = Math.round(x * 10) / 10;
    return String(r);
  }

  function hostsOf(m) {
    const n = num(m.reportingHosts);
    return n > 0 ? n : 1;
  }

  // ---- Colour scales (d3.scale.linear in the Hystrix Dashboard, clamped here) -------------

  function parseColor(c) {
    const names = { green: '#008000', red: '#ff0000', grey: '#808080', black: '#000000' };
    const hex = names[c] || c;
    return [1, 3, 5].map((i) => parseInt(hex.substr(i, 2), 16));
  }

  function scale(domain, colors) {
    const rgb = colors.map(parseColor);
    return function (x) {
      if (!(x > domain[0])) return colors[0];
      for (let i = 1; i < domain.length; i++) {
        if (x <= domain[i]) {
          const t = (x - domain[i - 1]) / (domain[i] - domain[i - 1]);
          const a = rgb[i - 1];
          const b = rgb[i];
          return 'rgb(' + [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * t)).join(',') + ')';
        }
      }
      return colors[colors.length - 1];
    };
  }

  const circleColor = scale([10, 25, 40, 50], ['green', '#ffcc00', '#ff9900', 'red']);
  const errorTextColor = scale([0, 10, 35, 50], ['grey', 'black', '#ff9900', 'red']);

  // Radius: d3.scale.pow().exponent(0.5).domain([0, max]).range([5, 125]), capped; position
  // d3.scale.linear().domain([0, max]).range(["30%", "40%"]), capped (spec §5.3). The radius
  // is scaled to the card's chart, whose height is a 250 px circle's diameter in Hystrix's.
  function drawCircle(circle, rate, max, errorPct) {
    const x = Math.min(Math.max(rate, 0), max) / max;
    const r = ((5 + 120 * Math.sqrt(x)) * SPARK_H) / 250;
    const pos = 0.3 + 0.1 * x;
    const color = circleColor(errorPct);
    setAttr(circle, 'r', r.toFixed(1));
    setAttr(circle, 'cx', (pos * SPARK_W).toFixed(1));
    setAttr(circle, 'cy', (pos * SPARK_H).toFixed(1));
    setAttr(circle, 'fill', color);
    setAttr(circle, 'stroke', color);
  }

  // ---- DOM helpers -------------------------------------------------------------------------

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function svgEl(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }

  // Sets text only when it changed: most values stay the same from one tick to the next.
  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function setAttr(node, name, value) {
    if (node.getAttribute(name) !== value) node.setAttribute(name, value);
  }

  // Label / value pairs laid out by a CSS grid (a table costs more to lay out).
  function statsGrid(pairs) {
    const grid = el('div', 'stats');
    const cells = {};
    for (const [key, label] of pairs) {
      const value = el('span', 'stat stat-' + key, '0');
      grid.append(el('span', 'label', label), value);
      cells[key] = value;
    }
    return { grid, cells };
  }

  function shortName(name) {
    return name.length > 32 ? name.substr(0, 4) + '...' + name.substr(name.length - 20) : name;
  }

  // ---- The page's clock of work, for the performance figure --------------------------------

  const perf = { frames: [], pendingMs: 0, pendingMessages: 0, includeLayout: false };

  // What circuit and pool cards share: the name, the chart with its circle, the rates.
  function cardParts(kind, itemName) {
    const card = el('div', 'card ' + kind);
    card.dataset.name = itemName;
    card.title = itemName;
    const name = el('div', 'name', shortName(itemName));
    const chart = el('div', 'chart');
    const svg = svgEl('svg', { viewBox: '0 0 ' + SPARK_W + ' ' + SPARK_H, preserveAspectRatio: 'none' });
    const circle = svgEl('circle', { cx: 0.3 * SPARK_W, cy: 0.3 * SPARK_H, r: 5, fill: 'green', stroke: 'green' });
    svg.append(circle);
    chart.append(svg);
    const rates = el('div', 'rates');
    const host = el('span', 'rate-host', 'Host: 0/s');
    const cluster = el('span', 'rate-cluster', 'Cluster: 0/s');
    rates.append(host, cluster);
    return { card, name, chart, svg, circle, rates, host, cluster };
  }

  // ---- A circuit ---------------------------------------------------------------------------

  const SPARK_W = 240;
  const SPARK_H = 96;

  function Circuit(monitor, name) {
    this.monitor = monitor;
    this.name = name;
    this.view = null;
    this.dirty = false;
    this.spark = []; // [time, ratePerSecond, "x,y" of its point]
    this.sparkChanged = false;
    this.history = { t: [], rate: [], error: [], p99: [] };
    this.build();
  }

  Circuit.prototype.build = function () {
    const { card, name, chart, svg, circle, rates, host, cluster } = cardParts('circuit', this.name);
    const err = el('div', 'err', '0 %');
    const line = svgEl('polyline', { points: '' });
    svg.append(line);
    const counters = el('div', 'counters');
    const c = {};
    // Column 1: timeouts, rejected, failures; column 2: successes, short-circuited, bad
    // requests (spec §5.3); laid out row by row.
    const cells = [
      ['timeout', 'c-timeout', 'Timed-out'], ['success', 'c-success', 'Successful'],
      ['rejected', 'c-rejected', 'Rejected'], ['short', 'c-short', 'Short-circuited'],
      ['failure', 'c-failure', 'Failure'], ['bad', 'c-bad', 'Bad request'],
    ];
    for (const [key, cls, title] of cells) {
      const cell = el('span', cls + ' counter-' + key, '0');
      cell.title = title;
      c[key] = cell;
      counters.append(cell);
    }
    chart.append(counters);
    const status = el('div', 'status');
    const table = statsGrid([
      ['hosts', 'Hosts'], ['p90', '90th'], ['p995', '99.5th'],
      ['median', 'Median'], ['p99', '99th'], ['mean', 'Mean'],
    ]);
    const cellsOf = table.cells;
    table.grid.classList.add('three');
    card.append(name, err, chart, rates, status, table.grid);
    card.addEventListener('click', () => Detail.open(this));
    this.dom = { card, err, circle, line, counters: c, host, cluster, status, stats: cellsOf };
  };

  // Reads one event (spec §5.3); returns false when a required field is missing.
  Circuit.prototype.update = function (m, now) {
    const hosts = hostsOf(m);
    const window = perHost(m.propertyValue_metricsRollingStatisticalWindowInMilliseconds, hosts);
    const requests = Math.max(0, num(m.requestCount) || 0);
    const rate = window > 0 ? requests / (window / 1000) : 0;
    const errors = num(m.errorCount) || 0;
    const errorPct = hosts === 1
      ? num(m.errorPercentage) || 0
      : (requests > 0 ? (100 * errors) / requests : 0);
    const latency = m.latencyExecute && typeof m.latencyExecute === 'object' ? m.latencyExecute : {};
    const pct = (p) => Math.floor((num(latency[p]) || 0) / hosts);
    const strategy = String(m.propertyValue_executionIsolationStrategy);
    const tpRejected = num(m.rollingCountThreadPoolRejected) || 0;
    const semRejected = num(m.rollingCountSemaphoreRejected) || 0;
    let rejected;
    if (strategy === 'THREAD') rejected = tpRejected;
    else if (strategy === 'SEMAPHORE') rejected = semRejected;
    else rejected = tpRejected + semRejected; // mixed isolation over a cluster
    this.view = {
      group: String(m.group),
      hosts,
      rate,
      hostRate: rate / hosts,
      errorPct,
      success: num(m.rollingCountSuccess) || 0,
      short: num(m.rollingCountShortCircuited) || 0,
      bad: num(m.rollingCountBadRequests) || 0,
      timeout: num(m.rollingCountTimeout) || 0,
      failure: num(m.rollingCountFailure) || 0,
      rejected,
      open: yesNo(m.isCircuitBreakerOpen, hosts),
      forcedOpen: yesNo(m.propertyValue_circuitBreakerForceOpen, hosts),
      forcedClosed: yesNo(m.propertyValue_circuitBreakerForceClosed, hosts),
      median: pct('50'),
      p90: pct('90'),
      p99: pct('99'),
      p995: pct('99.5'),
      mean: Math.floor((num(m.latencyExecute_mean) || 0) / hosts),
    };
    this.record(now);
    this.dirty = true;
  };

  Circuit.prototype.record = function (now) {
    const v = this.view;
    const spark = this.spark;
    const last = spark.length ? spark[spark.length - 1][0] : -Infinity;
    if (now - last >= 500) {
      spark.push([now, v.rate, ((now - EPOCH) / 1000).toFixed(1) + ',' + v.rate.toFixed(1)]);
      this.sparkChanged = true;
    }
    while (spark.length && (spark[0][0] < now - SPARK_MS || spark.length > 200)) {
      spark.shift();
      this.sparkChanged = true;
    }
    const h = this.history;
    const hlast = h.t.length ? h.t[h.t.length - 1] : -Infinity;
    if (now - hlast >= SAMPLE_MS) {
      h.t.push(now);
      h.rate.push(v.rate);
      h.error.push(v.errorPct);
      h.p99.push(v.p99);
      while (h.t.length && h.t[0] < now - HISTORY_MS) {
        h.t.shift();
        h.rate.shift();
        h.error.shift();
        h.p99.shift();
      }
    }
  };

  // The status line (spec §5.3): forced states, open, closed, or how many hosts are each.
  function statusParts(v) {
    const parts = [];
    const total = Math.max(v.hosts, v.open.yes + v.open.no);
    if (v.forcedOpen.yes > 0) {
      parts.push(['open', v.forcedOpen.yes >= total
        ? 'Circuit Forced Open'
        : 'Forced Open on ' + v.forcedOpen.yes + ' of ' + total]);
    } else if (v.open.yes > 0 && v.open.no === 0) {
      parts.push(['open', 'Circuit Open']);
    } else if (v.open.yes === 0) {
      parts.push(['closed', 'Circuit Closed']);
    } else {
      parts.push(['open', 'Open ' + v.open.yes]);
      parts.push(['closed', 'Closed ' + v.open.no]);
    }
    if (v.forcedClosed.yes > 0) {
      parts.push(['forced', v.forcedClosed.yes >= total
        ? '[ Forced Closed ]'
        : '[ Forced Closed on ' + v.forcedClosed.yes + ' of ' + total + ' ]']);
    }
    return parts;
  }

  Circuit.prototype.render = function () {
    const v = this.view;
    const d = this.dom;
    const shownError = round1(v.errorPct);
    setText(d.err, shownError + ' %');
    const errColor = errorTextColor(v.errorPct);
    if (d.errColor !== errColor) {
      d.errColor = errColor;
      d.err.style.color = errColor;
    }
    setText(d.counters.success, String(v.success));
    setText(d.counters.short, String(v.short));
    setText(d.counters.bad, String(v.bad));
    setText(d.counters.timeout, String(v.timeout));
    setText(d.counters.rejected, String(v.rejected));
    setText(d.counters.failure, String(v.failure));
    setText(d.host, 'Host: ' + round1(v.hostRate) + '/s');
    setText(d.cluster, 'Cluster: ' + round1(v.rate) + '/s');
    const parts = statusParts(v);
    const key = parts.map((p) => p.join(':')).join('|');
    if (d.status.dataset.key !== key) {
      d.status.dataset.key = key;
      d.status.replaceChildren(...parts.map(([cls, text]) => el('span', cls, text + ' ')));
      d.card.dataset.status = parts[0][0];
    }
    setText(d.stats.hosts, String(v.hosts));
    setText(d.stats.median, v.median + 'ms');
    setText(d.stats.p90, v.p90 + 'ms');
    setText(d.stats.p99, v.p99 + 'ms');
    setText(d.stats.p995, v.p995 + 'ms');
    setText(d.stats.mean, v.mean + 'ms');
    drawCircle(d.circle, v.hostRate, 400, v.errorPct);
    if (this.sparkChanged) {
      this.sparkChanged = false;
      drawSpark(d.line, this.spark);
    }
  };

  // The sparkline's points are (seconds since the page opened, rate), written once per
  // sample; a transform scrolls and scales them, so a render rewrites one attribute.
  function drawSpark(line, samples) {
    if (samples.length < 2) {
      setAttr(line, 'points', '');
      return;
    }
    let max = 0;
    for (const s of samples) if (s[1] > max) max = s[1];
    const end = (samples[samples.length - 1][0] - EPOCH) / 1000;
    const sx = SPARK_W / (SPARK_MS / 1000);
    const sy = max > 0 ? -(SPARK_H - 4) / max : 0;
    line.setAttribute('points', samples.map((s) => s[2]).join(' '));
    line.setAttribute(
      'transform',
      'matrix(' + sx.toFixed(4) + ' 0 0 ' + sy.toFixed(4) + ' ' + (SPARK_W - sx * end).toFixed(2) + ' ' + (SPARK_H - 2) + ')',
    );
  }

  // ---- A thread pool -----------------------------------------------------------------------

  function Pool(monitor, name) {
    this.monitor = monitor;
    this.name = name;
    this.view = null;
    this.dirty = false;
    this.build();
  }

  Pool.prototype.build = function () {
    const { card, name, chart, circle, rates, host, cluster } = cardParts('pool', this.name);
    const table = statsGrid([
      ['active', 'Active'], ['maxActive', 'Max Active'],
      ['queued', 'Queued'], ['executions', 'Executions'],
      ['poolSize', 'Pool Size'], ['queueSize', 'Queue Size'],
    ]);
    const stats = table.cells;
    card.append(name, chart, rates, table.grid);
    this.dom = { card, circle, host, cluster, stats };
  };

  Pool.prototype.update = function (m) {
    const hosts = hostsOf(m);
    const window = perHost(m.propertyValue_metricsRollingStatisticalWindowInMilliseconds, hosts);
    const executed = num(m.rollingCountThreadsExecuted) || 0;
    const rate = window > 0 ? executed / (window / 1000) : 0;
    this.view = {
      hosts,
      rate,
      hostRate: rate / hosts,
      active: num(m.currentActiveCount) || 0,
      maxActive: num(m.rollingMaxActiveThreads) || 0,
      queued: num(m.currentQueueSize) || 0,
      executions: executed,
      poolSize: num(m.currentPoolSize) || 0,
      queueSize: Math.floor(perHost(m.propertyValue_queueSizeRejectionThreshold, hosts) || 0),
    };
    this.dirty = true;
  };

  Pool.prototype.render = function () {
    const v = this.view;
    const d = this.dom;
    setText(d.host, 'Host: ' + round1(v.hostRate) + '/s');
    setText(d.cluster, 'Cluster: ' + round1(v.rate) + '/s');
    for (const key of ['active', 'maxActive', 'queued', 'executions', 'poolSize', 'queueSize']) {
      setText(d.stats[key], String(v[key]));
    }
    // Each queued task per host counts as 1 % of errors (spec §5.4).
    drawCircle(d.circle, v.hostRate, 2000, v.queued / v.hosts);
  };

  // ---- Sorting (spec §5.3, §5.4) -----------------------------------------------------------

  const CIRCUIT_SORTS = {
    errorThenVolume: ['Error then Volume', 'desc', (v) => (isNaN(v.errorPct) ? -1 : v.errorPct * 100000000 + v.rate)],
    alphabetical: ['Alphabetical', 'asc', null],
    volume: ['Volume', 'desc', (v) => v.rate],
    error: ['Error', 'desc', (v) => v.errorPct],
    mean: ['Mean', 'desc', (v) => v.mean],
    median: ['Median', 'desc', (v) => v.median],
    p90: ['90', 'desc', (v) => v.p90],
    p99: ['99', 'desc', (v) => v.p99],
    p995: ['99.5', 'desc', (v) => v.p995],
  };
  const POOL_SORTS = {
    alphabetical: ['Alphabetical', 'asc', null],
    volume: ['Volume', 'desc', (v) => v.hostRate],
  };

  function Sorter(items, sorts, initial, every, container) {
    this.items = items; // Map name -> Circuit | Pool
    this.sorts = sorts;
    this.key = initial;
    this.dir = sorts[initial][1];
    this.every = every;
    this.container = container;
    this.due = 0;
    this.order = [];
  }

  Sorter.prototype.menu = function (label) {
    const menu = el('span', 'sort', label + ': ');
    this.buttons = {};
    for (const key of Object.keys(this.sorts)) {
      const b = el('button', '', this.sorts[key][0]);
      b.type = 'button';
      b.dataset.sort = key;
      b.addEventListener('click', () => this.choose(key));
      this.buttons[key] = b;
      menu.append(b);
    }
    this.showMenu();
    return menu;
  };

  Sorter.prototype.showMenu = function () {
    for (const key in this.buttons) {
      const b = this.buttons[key];
      b.classList.toggle('active', key === this.key);
      b.dataset.dir = key === this.key ? this.dir : '';
    }
  };

  // Choosing the sort shown toggles its direction (as the Hystrix Dashboard).
  Sorter.prototype.choose = function (key) {
    if (key === this.key) this.dir = this.dir === 'asc' ? 'desc' : 'asc';
    else {
      this.key = key;
      this.dir = this.sorts[key][1];
    }
    this.showMenu();
    this.due = 0;
    this.sortIfDue(Date.now());
  };

  Sorter.prototype.sortIfDue = function (now) {
    if (now < this.due) return;
    this.due = now + this.every;
    const value = this.sorts[this.key][2];
    const sign = this.dir === 'asc' ? 1 : -1;
    const list = Array.from(this.items.values()).filter((item) => item.view);
    list.sort((a, b) => {
      if (value) {
        const d = value(a.view) - value(b.view);
        if (d !== 0 && !isNaN(d)) return sign * d;
        return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
      }
      return sign * (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    });
    const same = list.length === this.order.length && list.every((item, i) => item === this.order[i]);
    if (same) return;
    this.order = list;
    for (const item of list) this.container.append(item.dom.card);
  };

  // ---- One stream --------------------------------------------------------------------------

  let filterText = '';

  function matches(item) {
    if (!filterText) return true;
    const group = item.view && item.view.group ? item.view.group.toLowerCase() : '';
    return item.name.toLowerCase().includes(filterText) || group.includes(filterText);
  }

  // The URL the page opens for a stream: the stream itself when it is of this page's origin
  // (an embedded turbine) or said to send CORS headers, else the dashboard's proxy.
  function streamUrl(spec) {
    let text = String(spec.stream || '').trim();
    if (!/^https?:\/\//i.test(text) && text.charAt(0) !== '/') text = 'http://' + text;
    const url = new URL(text, location.href);
    if (spec.delay) url.searchParams.set('delay', spec.delay);
    if (!spec.auth && (url.origin === location.origin || spec.direct)) {
      return { url: url.href, proxied: false };
    }
    let proxied = '/proxy.stream?origin=' + encodeURIComponent(url.href);
    if (spec.auth) proxied += '&authorization=' + encodeURIComponent(spec.auth);
    return { url: proxied, proxied: true };
  }

  function Monitor(index, spec) {
    this.index = index;
    this.spec = spec;
    this.circuits = new Map();
    this.pools = new Map();
    this.lastMessage = 0;
    this.messages = 0;
    this.dropped = 0;
    this.droppedWhy = '';
    this.retries = 0;
    this.state = 'connecting';
    this.reason = '';
    this.retryAt = 0;
    this.meta = null;
    this.build();
  }

  Monitor.prototype.build = function () {
    const title = this.spec.name || this.spec.stream;
    const section = el('section', 'stream');
    section.id = 'stream_' + this.index;
    const head = el('div', 'stream-head');
    head.append(el('h2', '', 'Hystrix Stream: ' + title));
    const conn = el('span', 'conn');
    conn.dataset.state = 'connecting';
    const dot = el('span', 'dot');
    const connText = el('span', 'conn-text', 'connecting');
    conn.append(dot, connText);
    head.append(conn);
    const circuitsHead = el('div', 'stream-head');
    circuitsHead.append(el('h3', '', 'Circuits'));
    const circuits = el('div', 'grid circuits');
    circuits.id = 'circuits_' + this.index;
    const circuitsEmpty = el('div', 'empty', 'No circuits yet.');
    this.circuitSorter = new Sorter(this.circuits, CIRCUIT_SORTS, 'errorThenVolume', CIRCUIT_SORT_MS, circuits);
    circuitsHead.append(this.circuitSorter.menu('Sort'));
    const poolsHead = el('div', 'stream-head');
    poolsHead.append(el('h3', '', 'Thread Pools'));
    const pools = el('div', 'grid pools');
    pools.id = 'pools_' + this.index;
    const poolsEmpty = el('div', 'empty', 'No thread pools (commands isolated by semaphores have none).');
    this.poolSorter = new Sorter(this.pools, POOL_SORTS, 'volume', POOL_SORT_MS, pools);
    poolsHead.append(this.poolSorter.menu('Sort'));
    section.append(head, circuitsHead, circuitsEmpty, circuits, poolsHead, poolsEmpty, pools);
    document.getElementById('streams').append(section);
    this.dom = { section, conn, connText };
    this.kinds = {
      circuits: {
        Item: Circuit, fields: COMMAND_FIELDS, items: this.circuits, grid: circuits,
        empty: circuitsEmpty, sorter: this.circuitSorter,
      },
      pools: {
        Item: Pool, fields: POOL_FIELDS, items: this.pools, grid: pools,
        empty: poolsEmpty, sorter: this.poolSorter,
      },
    };
  };

  Monitor.prototype.connect = function () {
    const target = streamUrl(this.spec);
    this.target = target;
    this.setState('connecting', '');
    const source = new EventSource(target.url);
    this.source = source;
    source.onopen = () => {
      this.retries = 0;
      this.lastMessage = Date.now();
      this.setState('connected', '');
    };
    source.onmessage = (event) => this.onMessage(event.data);
    source.onerror = () => {
      if (this.source !== source) return;
      if (source.readyState === EventSource.CLOSED) this.failed(source);
      else this.setState('reconnecting', 'the stream was interrupted');
    };
  };

  // A stream that closed for good (a refusal, an error status): find out why, then retry
  // with exponential backoff.
  Monitor.prototype.failed = function (source) {
    source.close();
    if (this.source === source) this.source = null;
    const delay = Math.min(RETRY_MAX_MS, 1000 * Math.pow(2, this.retries));
    this.retries += 1;
    this.retryAt = Date.now() + delay;
    this.setState('reconnecting', 'Unable to connect to Command Metric Stream.');
    this.diagnose();
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  };

  // Reads the status and message of a failed stream (EventSource does not say).
  Monitor.prototype.diagnose = function () {
    if (typeof fetch !== 'function' || typeof AbortController !== 'function') return;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), 5000);
    fetch(this.target.url, { signal: abort.signal, cache: 'no-store' })
      .then((response) => {
        if (response.ok) {
          abort.abort();
          return;
        }
        return response.text().then((text) => {
          const why = 'HTTP ' + response.status + ': ' + text.trim().slice(0, 300);
          if (this.state !== 'connected') this.setState('reconnecting', why);
        });
      })
      .catch(() => {})
      .finally(() => clearTimeout(timer));
  };

  Monitor.prototype.setState = function (state, reason) {
    this.state = state;
    this.reason = reason;
    this.dom.conn.dataset.state = state;
    this.showConnection(Date.now());
  };

  Monitor.prototype.showConnection = function (now) {
    let text;
    if (this.state === 'connected') {
      const age = this.lastMessage ? ((now - this.lastMessage) / 1000).toFixed(1) : '-';
      text = 'connected' + (this.target && this.target.proxied ? ' (through the proxy)' : '') +
        ' \u00b7 last message ' + age + ' s ago';
      if (this.meta && this.meta.hosts !== undefined) text += ' \u00b7 ' + this.meta.hosts + ' host(s) reporting';
    } else if (this.state === 'reconnecting' && this.retryAt > now) {
      text = 'reconnecting in ' + Math.ceil((this.retryAt - now) / 1000) + ' s';
    } else {
      text = this.state;
    }
    if (this.reason && this.state !== 'connected') text += ': ' + this.reason;
    if (this.dropped) text += ' \u00b7 ' + this.dropped + ' event(s) dropped (' + this.droppedWhy + ')';
    setText(this.dom.connText, text);
  };

  // A stream silent too long (no message, no ping reaches EventSource) is reopened.
  Monitor.prototype.watchdog = function (now) {
    if (this.state === 'connected' && now - this.lastMessage > SILENT_MS && this.source) {
      this.lastMessage = now;
      this.source.close();
      this.failed(this.source);
      this.setState('stalled', 'no message for ' + SILENT_MS / 1000 + ' s; reopening');
    }
    this.showConnection(now);
  };

  Monitor.prototype.onMessage = function (data) {
    const start = performance.now();
    const now = Date.now();
    this.lastMessage = now;
    this.messages += 1;
    if (this.state !== 'connected') this.setState('connected', '');
    let m;
    try {
      m = JSON.parse(data);
    } catch (e) {
      this.drop('not JSON');
      return;
    }
    if (m && m.type === 'HystrixCommand') {
      if (m.rollingCountBadRequests === undefined) m.rollingCountBadRequests = 0;
      this.onItem(m, now, this.kinds.circuits);
    } else if (m && m.type === 'HystrixThreadPool') {
      this.onItem(m, now, this.kinds.pools);
    }
    else if (m && m.type === 'meta') {
      this.meta = { hosts: m.reportingHostsLast10Seconds };
    }
    perf.pendingMs += performance.now() - start;
    perf.pendingMessages += 1;
    schedule();
  };

  Monitor.prototype.drop = function (why) {
    this.dropped += 1;
    this.droppedWhy = why;
  };

  function missing(m, fields) {
    for (const f of fields) if (m[f] === undefined) return f;
    return null;
  }

  // Reads a command or pool event: dropped when a required field is missing, else the
  // item of its name is made (on first sight) and updated.
  Monitor.prototype.onItem = function (m, now, kind) {
    if (!m.reportingHosts) m.reportingHosts = 1;
    const absent = missing(m, kind.fields);
    if (absent) {
      this.drop('Key Missing: ' + absent);
      return;
    }
    const name = String(m.name);
    let item = kind.items.get(name);
    if (!item) {
      item = new kind.Item(this, name);
      kind.items.set(name, item);
      kind.grid.append(item.dom.card);
      kind.empty.hidden = true;
      kind.sorter.due = 0;
    }
    item.update(m, now);
    const hide = !matches(item);
    if (item.dom.card.hidden !== hide) item.dom.card.hidden = hide;
  };

  // Renders what changed since the last frame; a card says when it is first rendered.
  Monitor.prototype.render = function (now) {
    let rendered = 0;
    for (const items of [this.circuits, this.pools]) {
      for (const item of items.values()) {
        if (!item.dirty) continue;
        item.dirty = false;
        item.render();
        if (!item.dom.card.dataset.rendered) item.dom.card.dataset.rendered = '1';
        rendered += 1;
      }
    }
    this.circuitSorter.sortIfDue(now);
    this.poolSorter.sortIfDue(now);
    return rendered;
  };

  Monitor.prototype.applyFilter = function () {
    for (const item of this.circuits.values()) item.dom.card.hidden = !matches(item);
    for (const item of this.pools.values()) item.dom.card.hidden = !matches(item);
  };

  // ---- The detail dialog: a circuit's last 10 minutes ---------------------------------------

  const Detail = {
    circuit: null,
    open(circuit) {
      const dialog = document.getElementById('detail');
      this.circuit = circuit;
      document.getElementById('detail-name').textContent = circuit.name;
      document.getElementById('detail-sub').textContent =
        'group ' + (circuit.view ? circuit.view.group : '?') + ' \u00b7 ' +
        (circuit.monitor.spec.name || circuit.monitor.spec.stream);
      this.render();
      if (!dialog.open) dialog.showModal();
    },
    close() {
      const dialog = document.getElementById('detail');
      this.circuit = null;
      if (dialog.open) dialog.close();
    },
    render() {
      const c = this.circuit;
      if (!c) return;
      const h = c.history;
      lineChart(document.getElementById('chart-rate'), h.t, h.rate, '#2266aa', '/s');
      lineChart(document.getElementById('chart-error'), h.t, h.error, '#d00000', ' %');
      lineChart(document.getElementById('chart-p99'), h.t, h.p99, '#8a4fbf', ' ms');
    },
  };

  function lineChart(svg, times, values, color, unit) {
    const W = 800;
    const H = 110;
    const left = 50;
    const bottom = 14;
    const end = Date.now();
    let max = 0;
    for (const v of values) if (v > max) max = v;
    max = max > 0 ? max * 1.1 : 1;
    let points = '';
    for (let i = 0; i < times.length; i++) {
      const x = left + (1 - (end - times[i]) / HISTORY_MS) * (W - left);
      const y = H - bottom - (values[i] / max) * (H - bottom - 6);
      points += x.toFixed(1) + ',' + y.toFixed(1) + ' ';
    }
    const nodes = [
      svgEl('line', { x1: left, y1: H - bottom, x2: W, y2: H - bottom }),
      svgEl('line', { x1: left, y1: 6, x2: W, y2: 6 }),
      svgEl('polyline', { points, stroke: color }),
    ];
    const label = (x, y, text, anchor) => {
      const t = svgEl('text', { x, y, 'text-anchor': anchor || 'start' });
      t.textContent = text;
      return t;
    };
    nodes.push(label(left - 4, 12, round1(max) + unit, 'end'));
    nodes.push(label(left - 4, H - bottom, '0', 'end'));
    nodes.push(label(left, H - 2, '-10 min'));
    nodes.push(label(left + (W - left) / 2, H - 2, '-5 min', 'middle'));
    nodes.push(label(W - 2, H - 2, 'now', 'end'));
    if (values.length) {
      nodes.push(label(W - 4, 18, 'last ' + round1(values[values.length - 1]) + unit, 'end'));
    }
    svg.replaceChildren(...nodes);
  }

  // ---- The page ------------------------------------------------------------------------------

  // The streams the page was asked for (spec §5.1).
  function readStreams(params) {
    const streams = params.get('streams');
    if (streams) {
      let list;
      try {
        list = JSON.parse(streams);
      } catch (e) {
        throw new Error('the streams parameter is not JSON: ' + e.message);
      }
      if (!Array.isArray(list)) throw new Error('the streams parameter is not a JSON array');
      return list
        .filter((s) => s && s.stream)
        .map((s) => ({
          name: s.name ? String(s.name) : '',
          stream: String(s.stream),
          auth: s.auth ? String(s.auth) : '',
          delay: s.delay ? String(s.delay) : '',
          direct: !!s.direct,
        }));
    }
    const stream = params.get('stream');
    if (!stream) return [];
    return [{
      name: params.get('title') || '',
      stream,
      auth: params.get('authorization') || '',
      delay: params.get('delay') || '',
      direct: params.get('direct') === '1',
    }];
  }

  const monitors = [];
  let scheduled = false;

  function schedule() {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(frame);
  }

  function frame() {
    scheduled = false;
    const start = performance.now();
    const now = Date.now();
    let rendered = 0;
    for (const monitor of monitors) rendered += monitor.render(now);
    const rendering = performance.now() - start;
    // With `includeLayout` (the benchmark sets it), the style and layout the render caused
    // are counted too, by forcing them here rather than after the frame.
    if (perf.includeLayout && rendered) void document.body.offsetHeight;
    const ms = perf.pendingMs + (performance.now() - start);
    if (perf.pendingMessages || rendered) {
      perf.frames.push({
        at: start,
        ms,
        handlers: perf.pendingMs,
        render: rendering,
        layout: ms - perf.pendingMs - rendering,
        messages: perf.pendingMessages,
        rendered,
      });
      if (perf.frames.length > 2000) perf.frames.splice(0, 1000);
    }
    perf.pendingMs = 0;
    perf.pendingMessages = 0;
  }

  function start() {
    const params = new URLSearchParams(location.search);
    const title = params.get('title');
    let specs;
    try {
      specs = readStreams(params);
    } catch (e) {
      document.getElementById('streams').append(el('p', 'empty', 'Cannot read the page address: ' + e.message));
      return;
    }
    if (!specs.length) {
      const p = el('p', 'empty', 'No stream given. ');
      const a = el('a', '', 'Choose streams on the start page.');
      a.href = '/';
      p.append(a);
      document.getElementById('streams').append(p);
      return;
    }
    const pageTitle = title || specs.map((s) => s.name || s.stream).join(', ');
    document.title = 'Hystrix Monitor: ' + pageTitle;
    document.getElementById('page-title').textContent = pageTitle;
    specs.forEach((spec, i) => {
      const monitor = new Monitor(i, spec);
      monitors.push(monitor);
      monitor.connect();
    });
    const filter = document.getElementById('filter');
    filter.value = params.get('filter') || '';
    filterText = filter.value.trim().toLowerCase();
    filter.addEventListener('input', () => {
      filterText = filter.value.trim().toLowerCase();
      for (const monitor of monitors) monitor.applyFilter();
    });
    document.getElementById('detail-close').addEventListener('click', () => Detail.close());
    document.getElementById('detail').addEventListener('close', () => {
      Detail.circuit = null;
    });
    document.getElementById('detail').addEventListener('click', (event) => {
      if (event.target.id === 'detail') Detail.close();
    });
    setInterval(() => {
      const now = Date.now();
      for (const monitor of monitors) monitor.watchdog(now);
      if (Detail.circuit) Detail.render();
      schedule();
    }, 1000);
  }

  // For tests and the performance figure: the streams and the page's work per frame.
  window.hystrixDashboard = { monitors, perf, streamUrl };

  start();
})();
