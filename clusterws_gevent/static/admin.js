// The ClusterWS dashboard: polls {base}/data once a second and draws it. Plain DOM and SVG
// of our own (no chart library: three line plots do not need one, and the page must load
// nothing from elsewhere). Every value is written as text (channel names come from clients).
(function () {
  'use strict';
  var base = document.body.getAttribute('data-base');
  var SVG = 'http://www.w3.org/2000/svg';
  var W = 600, H = 160, PAD = 34;
  var LABELS = { connections: 'open sockets', messages_in: 'in/s', messages_out: 'out/s',
                 deliveries: 'deliveries/s', drops: 'drops/s' };

  function el(name, attrs, text) {
    var node = name.indexOf('svg:') === 0 ? document.createElementNS(SVG, name.slice(4)) : document.createElement(name);
    for (var key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = String(text);
    return node;
  }
  function number(value) {
    if (value === null || value === undefined) return '-';
    if (typeof value !== 'number') return String(value);
    return Math.abs(value) >= 100 || Number.isInteger(value) ? Math.round(value).toLocaleString('en') : value.toFixed(2);
  }
  function bytes(value) {
    if (value === null || value === undefined) return '-';
    var units = ['B', 'KiB', 'MiB', 'GiB'], i = 0;
    while (value >= 1024 && i < units.length - 1) { value /= 1024; i++; }
    return (i ? value.toFixed(1) : value) + ' ' + units[i];
  }
  function duration(seconds) {
    seconds = Math.max(0, Math.floor(seconds || 0));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600), m = Math.floor(seconds % 3600 / 60);
    return d ? d + 'd ' + h + 'h' : h ? h + 'h ' + m + 'm' : m + 'm ' + seconds % 60 + 's';
  }
  function clock(t) { return new Date(t * 1000).toLocaleTimeString('en-GB'); }

  // A table: columns are [heading, function(row) -> text, numeric?]
  function fill(table, columns, rows, empty) {
    table.textContent = '';
    var head = el('tr');
    columns.forEach(function (c) { head.appendChild(el('th', c[2] ? { class: 'num', scope: 'col' } : { scope: 'col' }, c[0])); });
    table.appendChild(el('thead')).appendChild(head);
    var body = table.appendChild(el('tbody'));
    if (!rows.length) {
      body.appendChild(el('tr')).appendChild(el('td', { colspan: columns.length }, empty || 'none'));
      return;
    }
    rows.forEach(function (row) {
      var tr = body.appendChild(el('tr'));
      columns.forEach(function (c) {
        var value = c[1](row), td = tr.appendChild(el('td', c[2] ? { class: 'num' } : {}));
        if (value && value.cls) { td.className += ' ' + value.cls; td.textContent = value.text; } else td.textContent = value;
      });
    });
  }

  // One plot: an SVG of polylines, a legend, and a table of its points behind a <details>.
  function Plot(figure) {
    this.series = figure.getAttribute('data-series').split(',');
    var name = figure.id.replace('figure-', '');
    figure.appendChild(el('figcaption', { id: figure.id + '-title' }, figure.getAttribute('data-title')));
    this.svg = figure.appendChild(el('svg:svg', { viewBox: '0 0 ' + W + ' ' + H, id: 'plot-' + name, role: 'img',
                                                  'aria-labelledby': figure.id + '-title' }));
    this.lines = this.series.map(function (s, i) {
      return this.svg.appendChild(el('svg:polyline', { class: 's' + i, 'data-series': s, points: '' }));
    }, this);
    this.top = this.svg.appendChild(el('svg:text', { x: 2, y: 10 }, ''));
    this.bottom = this.svg.appendChild(el('svg:text', { x: 2, y: H - 4 }, '0'));
    this.span = this.svg.appendChild(el('svg:text', { x: W - 2, y: H - 4, 'text-anchor': 'end' }, ''));
    var legend = figure.appendChild(el('div', { class: 'legend' }));
    this.series.forEach(function (s, i) { legend.appendChild(el('span', { class: 's' + i }, LABELS[s])); });
    this.details = figure.appendChild(el('details'));
    this.details.appendChild(el('summary', {}, 'Table of the points'));
    this.table = this.details.appendChild(el('div', { class: 'scroll' })).appendChild(el('table', { id: 'table-' + name }));
    var self = this;
    this.details.addEventListener('toggle', function () { if (self.last) self.draw(self.last); });
  }
  Plot.prototype.draw = function (history) {
    this.last = history;
    var columns = history.columns, points = history.points, series = this.series;
    var index = series.map(function (s) { return columns.indexOf(s); });
    var max = 1;
    points.forEach(function (p) { index.forEach(function (i) { if (p[i] > max) max = p[i]; }); });
    var t0 = points.length ? points[0][0] : 0, t1 = points.length ? points[points.length - 1][0] : 1;
    var span = Math.max(t1 - t0, 1);
    this.lines.forEach(function (line, k) {
      line.setAttribute('points', points.map(function (p) {
        var x = PAD + (W - PAD - 4) * (p[0] - t0) / span, y = H - 16 - (H - 30) * p[index[k]] / max;
        return x.toFixed(1) + ',' + y.toFixed(1);
      }).join(' '));
    });
    this.top.textContent = number(max);
    this.span.textContent = points.length ? clock(t0) + ' - ' + clock(t1) : '';
    if (this.details.open) {
      var rows = points.slice().reverse();
      fill(this.table, [['time', function (p) { return clock(p[0]); }]].concat(series.map(function (s, k) {
        return [LABELS[s], function (p) { return number(p[index[k]]); }, true];
      })), rows);
    }
  };

  var plots = Array.prototype.map.call(document.querySelectorAll('figure[data-series]'), function (f) { return new Plot(f); });
  function updown(up) { return { cls: up ? 'up' : 'down', text: up ? 'up' : 'down' }; }
  function reasons(drops) {
    var keys = Object.keys(drops || {});
    return keys.length ? keys.map(function (k) { return k + ': ' + drops[k]; }).join(', ') : '0';
  }

  function render(view) {
    var totals = view.totals || {};
    document.getElementById('server').textContent = view.server.mode + ', ' + view.server.scaler + ', ' +
      totals.workers + ' worker(s); updated ' + clock(view.time);
    Object.keys(totals).forEach(function (key) {
      var node = document.getElementById('total-' + key);
      if (node) node.textContent = key === 'outbox_bytes' ? bytes(totals[key]) : number(totals[key]);
    });
    plots.forEach(function (plot) { plot.draw(view.history); });
    fill(document.getElementById('processes'), [
      ['process', function (r) { return r.kind + (r.id ? ' ' + r.id : ''); }],
      ['pid', function (r) { return r.pid; }, true],
      ['state', function (r) { return r.state; }],
      ['uptime', function (r) { return duration(r.uptime); }, true],
      ['restarts', function (r) { return r.restarts; }, true],
      ['RSS', function (r) { return bytes(r.rss); }, true]], view.processes);
    fill(document.getElementById('workers'), [
      ['worker', function (r) { return r.id; }],
      ['pid', function (r) { return r.pid; }, true],
      ['sockets', function (r) { return number(r.connections); }, true],
      ['subscriptions', function (r) { return number(r.subscriptions); }, true],
      ['in/s', function (r) { return number(r.messages_in_rate); }, true],
      ['out/s', function (r) { return number(r.messages_out_rate); }, true],
      ['deliveries/s', function (r) { return number(r.deliveries_rate); }, true],
      ['outbox', function (r) { return bytes(r.outbox_bytes); }, true],
      ['links up', function (r) { return r.links_up + '/' + r.links; }, true],
      ['drops', function (r) { return reasons(r.drops); }]], view.workers, 'no worker reports yet');
    fill(document.getElementById('links'), [
      ['process', function (r) { return r.process; }],
      ['link', function (r) { return r.name; }],
      ['state', function (r) { return updown(r.up); }],
      ['last error', function (r) { return r.error || '-'; }]], view.links, 'no links (one process)');
    fill(document.getElementById('channels-subscribers'), [
      ['channel', function (r) { return r[0]; }], ['subscribers', function (r) { return number(r[1]); }, true]],
      view.channels.by_subscribers, 'no channel has subscribers');
    fill(document.getElementById('channels-messages'), [
      ['channel', function (r) { return r[0]; }], ['messages/s', function (r) { return number(r[1]); }, true]],
      view.channels.by_messages, 'no messages in the last second');
    var drops = Object.keys(totals.drops || {}).map(function (k) { return [k, totals.drops[k]]; });
    fill(document.getElementById('drops'), [
      ['reason', function (r) { return r[0]; }], ['messages', function (r) { return number(r[1]); }, true]],
      drops, 'nothing dropped');
  }

  var failures = 0;
  function poll() {
    fetch(base + '/data', { credentials: 'same-origin', cache: 'no-store' }).then(function (response) {
      if (response.status === 401) { location.assign(base + '/login'); return null; }
      return response.json();
    }).then(function (view) {
      failures = 0;
      if (view && !view.starting) render(view);
    }).catch(function () {
      failures++;
      document.getElementById('server').textContent = 'no answer from the server (' + failures + ')';
    }).then(function () { setTimeout(poll, 1000); });
  }
  poll();
}());
