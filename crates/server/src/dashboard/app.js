// hifi's dashboard: renders the API's JSON into pages (board, pipeline,
// canary, releases, history, diff) and re-renders the page shown whenever
// the event stream says something happened. Elements are built with
// textContent only, never innerHTML, so nothing the API returns is parsed
// as markup. The session cookie is HttpOnly: this script never sees it.
'use strict';
(() => {
  // Every kind of event, as the server names them (SSE event names).
  const EVENT_KINDS = (document.body.dataset.events || '').split(' ').filter(Boolean);
  const SVG = 'http://www.w3.org/2000/svg';
  const page = document.getElementById('page');
  let me = null;
  let asked = null;
  // Who the caller is and what they may do, asked once.
  const whoAmI = () => (asked = asked || api('GET', 'me').then(
    (m) => { me = m; },
    (e) => { asked = null; throw e; }));
  let renderSeq = 0;
  let pending = null;
  let poll = null;

  // ---- helpers -----------------------------------------------------------

  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'class') el.className = v;
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function s(tag, attrs) {
    const el = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
    return el;
  }

  const short = (id) => (id ? String(id).slice(0, 12) : '—');
  const when = (ms) => (ms ? new Date(ms).toLocaleString() : '—');
  const pct = (x) => (x * 100).toFixed(2) + ' %';
  const releaseLink = (id) =>
    id ? h('a', { href: '#/release/' + encodeURIComponent(id), class: 'rel' }, short(id)) : '—';

  class Problem extends Error {
    constructor(p, status) {
      super(p && p.detail ? p.detail : 'request failed (' + status + ')');
      this.problem = p;
      this.status = status;
    }
  }

  async function api(method, path, body) {
    const init = { method, headers: { accept: 'application/json' }, credentials: 'same-origin' };
    if (body !== undefined) {
      init.headers['content-type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const r = await fetch('/api/v1/' + path, init);
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch (_) { json = null; }
    if (r.status === 401) {
      // The session ended (signed out, expired, token revoked): sign in again.
      location.reload();
      throw new Problem(json, r.status);
    }
    if (!r.ok) throw new Problem(json, r.status);
    return json;
  }

  function toast(text, bad) {
    const t = document.getElementById('toast');
    t.textContent = text;
    t.className = bad ? 'show bad' : 'show';
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { t.className = ''; }, 6000);
  }

  function confirmAction(text) {
    const dialog = document.getElementById('confirm');
    document.getElementById('confirm-text').textContent = text;
    dialog.returnValue = '';
    return new Promise((resolve) => {
      dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
      dialog.showModal();
    });
  }

  // A button that asks first, then calls the API; disabled (saying why)
  // when the role or the state forbids it.
  function actionButton(label, action, env, why, question, call) {
    const b = h('button', { 'data-action': action, 'data-env': env, disabled: !!why, title: why || question }, label);
    b.addEventListener('click', async () => {
      if (!(await confirmAction(question))) return;
      b.disabled = true;
      try {
        const out = await call();
        toast(label + ' ' + env + ': done' + (out && out.deployment ? ' (deployment ' + out.deployment.id + ')' : ''));
      } catch (e) {
        toast(label + ' ' + env + ': ' + e.message, true);
      }
      refresh();
    });
    return b;
  }

  const forbids = (what) => 'your role (' + me.role + ') may not ' + what;

  // ---- pages -------------------------------------------------------------

  async function board() {
    // The board is the first page most loads show: its data and the
    // caller's rights are asked for at once.
    const [b] = await Promise.all([api('GET', 'board'), whoAmI()]);
    const cards = new Map(b.cards.map((c) => [c.id, c]));
    const conflicts = new Map();
    for (const f of b.conflicts) {
      const list = conflicts.get(f.card) || [];
      list.push(f);
      conflicts.set(f.card, list);
    }
    const canMove = me.may.move_cards;
    const stages = b.stages.map((col) => col.stage);
    async function move(id, stage) {
      const card = cards.get(id);
      if (!id || !card || card.stage === stage) return;
      const el = page.querySelector('[data-card="' + CSS.escape(id) + '"]');
      const column = page.querySelector('[data-stage="' + CSS.escape(stage) + '"]');
      if (el && column) column.append(el);
      try {
        await api('POST', 'cards/' + encodeURIComponent(id) + '/move', { stage });
        toast(id + ' moved to ' + stage);
      } catch (err) {
        toast('moving ' + id + ': ' + err.message, true);
      }
      refresh();
    }
    const columns = b.stages.map((col) => {
      const column = h('section', { class: 'column', 'data-stage': col.stage },
        h('h2', {}, col.stage, h('span', { class: 'count' }, col.cards.length)));
      if (canMove) {
        column.addEventListener('dragover', (e) => { e.preventDefault(); column.classList.add('over'); });
        column.addEventListener('dragleave', () => column.classList.remove('over'));
        column.addEventListener('drop', (e) => {
          e.preventDefault();
          column.classList.remove('over');
          move(e.dataTransfer.getData('text/plain'), col.stage);
        });
      }
      for (const id of col.cards) {
        const c = cards.get(id) || { id, title: '', branch: '', live_in: [], hotfix: false };
        const flags = conflicts.get(id);
        const el = h('article', {
          class: 'card' + (flags ? ' conflict' : '') + (c.hotfix ? ' hotfix' : ''),
          'data-card': id,
          draggable: canMove ? 'true' : 'false',
          title: canMove ? 'drag to another stage (or focus it and press ← →)' : forbids('move cards'),
        },
        h('strong', {}, id), c.hotfix ? h('span', { class: 'tag hot' }, 'hotfix') : null,
        h('div', { class: 'title' }, c.title || ''),
        h('div', { class: 'branch' }, c.branch),
        flags ? h('div', { class: 'flag' }, 'conflict in ' + flags.map((f) => f.env + ' with ' + (f.with_cards.join(', ') || 'the base') + (f.files.length ? ' (' + f.files.join(', ') + ')' : '')).join('; ')) : null,
        h('div', { class: 'envs' },
          (c.live_in || []).map((env) => h('span', { class: 'tag live', 'data-live': env }, env))));
        if (canMove) {
          el.addEventListener('dragstart', (e) => {
            e.dataTransfer.setData('text/plain', id);
            e.dataTransfer.effectAllowed = 'move';
          });
          // Without a mouse: focus a card, move it with the arrow keys.
          el.tabIndex = 0;
          el.addEventListener('keydown', (e) => {
            const step = { ArrowRight: 1, ArrowLeft: -1 }[e.key];
            const to = stages[stages.indexOf(c.stage) + (step || 0)];
            if (!step || !to) return;
            e.preventDefault();
            move(id, to);
          });
        }
        column.append(el);
      }
      return column;
    });
    return [h('div', { class: 'board' }, columns)];
  }

  function instancesTable(env) {
    if (!env.instances.length) return h('p', { class: 'muted' }, 'no instances');
    return h('table', { class: 'instances' },
      h('tr', {}, h('th', {}, 'service'), h('th', {}, 'slot'), h('th', {}, '#'), h('th', {}, 'release'), h('th', {}, 'health'), h('th', {}, 'restarts')),
      env.instances.map((i) => h('tr', {},
        h('td', {}, i.service), h('td', {}, i.slot), h('td', {}, i.replica),
        h('td', {}, releaseLink(i.release)),
        h('td', { class: 'health ' + i.health }, i.health), h('td', {}, i.restarts))));
  }

  async function pipeline() {
    const st = await api('GET', 'environments');
    const out = [h('p', { class: 'muted' }, st.running ? 'control plane running (pid ' + st.pid + ')' : 'control plane not running: deployments wait for `hifi up`')];
    for (const env of st.environments) {
      const r = env.routing;
      const deploy = me.may.deploy.includes(env.env);
      const from = env.origin.startsWith('promotes from ') ? env.origin.slice('promotes from '.length) : null;
      const d = env.deployment;
      const buttons = [];
      if (from) {
        buttons.push(actionButton('Promote', 'promote', env.env,
          deploy ? null : forbids('deploy to ' + env.env),
          'Promote ' + from + "'s verified live release to " + env.env + '?',
          () => api('POST', 'environments/' + encodeURIComponent(env.env) + '/promote', { from })));
      } else {
        buttons.push(actionButton('Compose', 'compose', env.env,
          me.may.compose ? null : forbids('compose environments'),
          'Compose ' + env.env + ' from the base branch and its cards?',
          () => api('POST', 'environments/' + encodeURIComponent(env.env) + '/compose')));
        buttons.push(actionButton('Deploy', 'deploy', env.env,
          deploy ? (env.composed ? null : 'nothing composed yet') : forbids('deploy to ' + env.env),
          'Deploy the latest composition of ' + env.env + '?',
          () => api('POST', 'environments/' + encodeURIComponent(env.env) + '/deploy', {})));
      }
      buttons.push(actionButton('Approve', 'approve', env.env,
        !me.may.approve ? forbids('approve releases') : (env.approvals ? null : 'nothing waits for a sign-off here'),
        'Sign off release ' + short(env.approvals && env.approvals.release) + ' for ' + env.env + '?',
        () => api('POST', 'environments/' + encodeURIComponent(env.env) + '/approve', {})));
      buttons.push(actionButton('Rollback', 'rollback', env.env,
        !deploy ? forbids('roll back ' + env.env) : (r.standby ? null : 'there is no previous state to go back to'),
        'Roll ' + env.env + ' back to ' + short(r.standby && r.standby.release) + '?',
        () => api('POST', 'environments/' + encodeURIComponent(env.env) + '/rollback', {})));
      buttons.push(actionButton('Abort', 'abort', env.env,
        !deploy ? forbids('steer the canary of ' + env.env) : (d ? null : 'no deployment in progress'),
        'Abort the deployment in progress in ' + env.env + '? Users go back to the live release.',
        () => api('POST', 'environments/' + encodeURIComponent(env.env) + '/canary/abort')));
      const weight = r.candidate ? r.weight : 0;
      out.push(h('section', { class: 'env', 'data-env': env.env },
        h('h2', {}, env.env, h('span', { class: 'muted' }, ' ' + env.strategy + ', ' + env.origin + ', port ' + env.port)),
        h('dl', {},
          h('dt', {}, 'live'), h('dd', { class: 'live-release' }, r.active ? [releaseLink(r.active.release), ' on ', h('span', { class: 'slot ' + r.active.slot }, r.active.slot), ' since ', when(r.live_since)] : 'nothing'),
          h('dt', {}, 'traffic'), h('dd', { class: 'traffic' },
            [r.active ? r.active.slot + ' ' + (100 - weight) + ' %' : null,
              r.candidate ? r.candidate.slot + ' ' + weight + ' % (candidate ' + short(r.candidate.release) + ')' : null]
              .filter(Boolean).join(' · ') || 'none'),
          h('dt', {}, 'verified'), h('dd', { class: env.verified ? 'ok' : 'bad', 'data-verified': String(env.verified) }, env.verified ? 'verified here' : 'not verified'),
          env.rejected ? [h('dt', {}, 'rejected'), h('dd', { class: 'bad' }, env.rejected.reason + ' (' + env.rejected.actor + ')')] : null,
          h('dt', {}, 'cards'), h('dd', {}, env.cards.length ? env.cards.join(', ') : '—'),
          h('dt', {}, 'approvals'), h('dd', { class: 'approvals', 'data-have': env.approvals ? env.approvals.have : null }, env.approvals ? env.approvals.have + ' of ' + env.approvals.need + ' for ' + short(env.approvals.release) : 'none needed now'),
          h('dt', {}, 'deployment'), h('dd', { class: 'deployment', 'data-deployment': d ? d.id : null }, d ? '#' + d.id + ' ' + d.strategy + ' ' + d.state + (d.paused ? ' (paused)' : '') + ' by ' + d.actor : 'none in progress'),
          h('dt', {}, 'standby'), h('dd', {}, r.standby ? [releaseLink(r.standby.release), ' on ', r.standby.slot] : '—')),
        instancesTable(env),
        h('div', { class: 'actions' }, buttons)));
    }
    return out;
  }

  // A chart of one or more series ({ name, cls, pts: [{ at, v, tip, dot }] })
  // over time, with the limit drawn as a dashed line.
  function plot(metric, limit, label, fmt, series) {
    const W = 460, H = 150, L = 48, R = 10, T = 12, B = 24;
    const all = series.flatMap((sr) => sr.pts);
    const count = Math.max(0, ...series.map((sr) => sr.pts.length));
    const svg = s('svg', { viewBox: '0 0 ' + W + ' ' + H, class: 'chart', 'data-metric': metric, 'data-points': count, role: 'img' });
    const top = Math.max(limit * 1.5, ...all.map((p) => p.v), 1e-9);
    const t0 = all.length ? Math.min(...all.map((p) => p.at)) : 0;
    const t1 = all.length ? Math.max(...all.map((p) => p.at), t0 + 1) : 1;
    const x = (t) => L + ((t - t0) / Math.max(t1 - t0, 1)) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    svg.append(s('rect', { x: L, y: T, width: W - L - R, height: H - T - B, class: 'frame' }));
    const ly = y(limit);
    svg.append(s('line', { x1: L, x2: W - R, y1: ly, y2: ly, class: 'limit' }));
    const lt = s('text', { x: W - R - 4, y: ly - 4, 'text-anchor': 'end', class: 'limit-label' });
    lt.textContent = 'limit ' + fmt(limit);
    svg.append(lt);
    const yl = s('text', { x: 4, y: T + 10, class: 'axis' });
    yl.textContent = fmt(top);
    svg.append(yl);
    const name = s('text', { x: L + 4, y: H - 6, class: 'axis' });
    name.textContent = label + (all.length ? ' · ' + new Date(t0).toLocaleTimeString() + ' → ' + new Date(t1).toLocaleTimeString() : ' · nothing measured yet');
    svg.append(name);
    for (const sr of series) {
      if (!sr.pts.length) continue;
      const d = sr.pts.map((p, i) => (i ? 'L' : 'M') + x(p.at).toFixed(1) + ' ' + y(p.v).toFixed(1)).join(' ');
      svg.append(s('path', { d, class: 'series ' + sr.cls, 'data-series': sr.name, 'data-samples': sr.pts.length }));
      for (const p of sr.pts) {
        if (!p.dot) continue;
        const c = s('circle', { cx: x(p.at).toFixed(1), cy: y(p.v).toFixed(1), r: 3.5, class: p.dot });
        const tip = s('title');
        tip.textContent = p.tip;
        c.append(tip);
        svg.append(c);
      }
      if (series.length > 1) {
        const last = sr.pts[sr.pts.length - 1];
        const tag = s('text', { x: x(last.at) - 4, y: y(last.v) - 4, 'text-anchor': 'end', class: 'series-label ' + sr.cls });
        tag.textContent = sr.name;
        svg.append(tag);
      }
    }
    return svg;
  }

  function chart(view, metric, limit, label, fmt) {
    const pts = view.points.map((p) => ({
      at: p.at, v: p[metric], dot: 'v-' + p.verdict,
      tip: 'step ' + p.step + ' at ' + p.weight + ' %: ' + fmt(p[metric]) + ', ' + p.requests + ' requests, ' + p.verdict,
    }));
    return plot(metric, limit, label, fmt, [{ name: 'candidate', cls: 'slot-' + ((view.deployment && view.deployment.slot) || 'candidate'), pts }]);
  }

  // The live figures seen since this page opened, per environment, then
  // per service and slot: the proxy answers for the last seconds only.
  const liveSeen = new Map();

  function remember(view) {
    const bySeries = liveSeen.get(view.env) || new Map();
    liveSeen.set(view.env, bySeries);
    for (const f of view.live) {
      const key = f.service + ' ' + f.slot + ' (' + f.role + ')';
      const list = bySeries.get(key) || [];
      if (!list.length || list[list.length - 1].at < f.at) list.push(f);
      if (list.length > 150) list.shift();
      bySeries.set(key, list);
    }
    return bySeries;
  }

  function liveChart(bySeries, metric, limit, label, fmt) {
    const series = [...bySeries.entries()].map(([name, list]) => ({
      name,
      cls: 'slot-' + list[0].slot + (list[0].role === 'stable' ? ' stable' : ''),
      pts: list.filter((f) => f.requests > 0 && f[metric] !== null).map((f) => ({ at: f.at, v: f[metric] })),
    }));
    return plot('live-' + metric, limit, label, fmt, series);
  }

  function liveSection(v, th) {
    const bySeries = remember(v);
    if (v.live_note) return h('p', { class: 'muted live-note' }, v.live_note);
    return h('div', { class: 'charts live-charts' },
      liveChart(bySeries, 'error_ratio', th.max_error_rate, 'live error ratio, last 10 s, per service and slot', pct),
      liveChart(bySeries, 'p99_ms', th.max_p99_ms, 'live p99, last 10 s, per service and slot', (n) => Math.round(n) + ' ms'));
  }

  async function canary() {
    const views = await api('GET', 'canary');
    if (!views.length) return [h('p', { class: 'muted' }, 'no environment deploys by canary')];
    const out = [];
    let live = false;
    for (const v of views) {
      const d = v.deployment;
      live = live || v.in_progress;
      const f = v.forecast;
      const th = v.thresholds;
      out.push(h('section', { class: 'canary', 'data-env': v.env, 'data-in-progress': String(v.in_progress) },
        h('h2', {}, v.env, ' ', h('span', { class: 'muted' }, d ? 'deployment #' + d.id + ' ' + d.state + (d.paused ? ' (paused)' : '') + ' — candidate ' + short(d.release) + ' on ' + (d.slot || '?') : 'no canary yet')),
        h('p', { class: 'step' },
          d ? 'step ' + (d.step + 1) + ' of ' + th.steps.length + ': ' + (v.step_weight !== null ? v.step_weight : d.weight) + ' % of users' +
            (v.next_weight !== null ? ', next ' + v.next_weight + ' %' : ', next: live') : '',
          ' · steps ' + th.steps.join(' → ') + ' % every ' + th.interval_ms / 1000 + ' s, at least ' + th.min_requests + ' requests'),
        h('div', { class: 'charts' },
          chart(v, 'error_ratio', th.max_error_rate, 'error ratio (candidate slot)', pct),
          chart(v, 'p99_ms', th.max_p99_ms, 'p99 latency (candidate slot)', (n) => Math.round(n) + ' ms')),
        v.in_progress ? liveSection(v, th) : null,
        h('p', { class: 'forecast ' + (f ? f.verdict : '') },
          f ? 'the judge, on figures like the last ones: ' + ({ pass: 'pass → ' + (v.next_weight !== null ? v.next_weight + ' %' : 'live'), extend: 'extend the step', fail: 'fail → abort' })[f.verdict] + (f.reasons.length ? ' (' + f.reasons.join('; ') + ')' : '')
            : (v.in_progress ? 'no window judged yet' : ''))));
    }
    // Judged windows come in between events too: look again while one runs.
    if (live) poll = setTimeout(refresh, 2000);
    return out;
  }

  async function releases() {
    const list = await api('GET', 'releases');
    return [h('table', { class: 'list' },
      h('tr', {}, h('th', {}, 'release'), h('th', {}, 'composed for'), h('th', {}, 'cards'), h('th', {}, 'live in'), h('th', {}, 'created')),
      list.map((r) => h('tr', {},
        h('td', {}, releaseLink(r.id)), h('td', {}, r.composed_for),
        h('td', {}, r.cards.map((c) => c.id).join(', ') || '—'),
        h('td', {}, r.live_in.join(', ') || '—'), h('td', {}, when(r.created_at)))))];
  }

  async function release(id) {
    const r = await api('GET', 'releases/' + encodeURIComponent(id));
    const rel = r;
    const table = (head, rows) => h('table', { class: 'list' }, h('tr', {}, head.map((x) => h('th', {}, x))), rows.map((row) => h('tr', {}, row.map((c) => h('td', {}, c)))));
    return [h('section', { class: 'release', 'data-release': rel.id },
      h('h2', {}, 'release ', h('code', {}, rel.id)),
      r.rejected ? h('p', { class: 'bad' }, 'rejected by ' + r.rejected.actor + ': ' + r.rejected.reason) : null,
      h('h3', {}, 'composition'),
      h('dl', {}, h('dt', {}, 'composed for'), h('dd', {}, rel.composed_for), h('dt', {}, 'base'), h('dd', {}, h('code', {}, rel.base_commit)),
        h('dt', {}, 'commit'), h('dd', {}, h('code', {}, rel.commit)), h('dt', {}, 'created'), h('dd', {}, when(rel.created_at))),
      table(['card', 'branch', 'commit'], rel.cards.map((c) => [c.id, c.branch, h('code', {}, c.commit)])),
      h('h3', {}, 'artifacts'),
      table(['service', 'version', 'digest', 'image'], rel.services.map((sv) => [sv.service, h('code', {}, short(sv.version)), h('code', {}, sv.digest || '—'), h('code', {}, sv.image_id || '—')])),
      h('h3', {}, 'verified'),
      r.verified.length ? table(['environment', 'when'], r.verified.map((v) => [v.env, when(v.at)])) : h('p', { class: 'muted' }, 'not verified anywhere yet'),
      h('h3', {}, 'approvals'),
      r.approvals.length ? table(['environment', 'by', 'when'], r.approvals.map((a) => [a.env, a.actor, when(a.at)])) : h('p', { class: 'muted' }, 'no sign-offs'),
      h('h3', {}, 'live in'), h('p', { class: 'live-in' }, r.live_in.join(', ') || 'nowhere'),
      h('h3', {}, 'deployments'),
      table(['#', 'environment', 'strategy', 'state', 'by', 'when'], r.deployments.map((d) => [d.id, d.env, d.strategy, d.state, d.actor, when(d.created_at)])))];
  }

  async function envPicker(names, key, value, onchange) {
    return h('select', { name: key, onchange }, names.map((n) => h('option', { value: n, selected: n === value }, n)));
  }

  function params() {
    const q = location.hash.split('?')[1] || '';
    return new URLSearchParams(q);
  }

  async function history() {
    const st = await api('GET', 'environments');
    const names = st.environments.map((e) => e.env);
    const env = params().get('env') || names[0];
    const out = [h('p', {}, 'environment ', await envPicker(names, 'env', env, (e) => { location.hash = '#/history?env=' + encodeURIComponent(e.target.value); }))];
    if (env) {
      const entries = await api('GET', 'environments/' + encodeURIComponent(env) + '/history');
      out.push(h('table', { class: 'list history' },
        h('tr', {}, ['#', 'release', 'strategy', 'state', 'by', 'when', 'steps'].map((x) => h('th', {}, x))),
        entries.map((e) => h('tr', {},
          h('td', {}, e.deployment.id), h('td', {}, releaseLink(e.deployment.release)), h('td', {}, e.deployment.strategy),
          h('td', { class: 'state ' + e.deployment.state }, e.deployment.state + (e.deployment.reason ? ': ' + e.deployment.reason : '')),
          h('td', {}, e.deployment.actor), h('td', {}, when(e.deployment.created_at)),
          h('td', {}, h('details', {}, h('summary', {}, e.steps.length + ' events'),
            h('ol', {}, e.steps.map((ev) => h('li', {}, when(ev.at) + ' ' + ev.actor + ' ' + ev.kind + ': ' + ev.message)))))))));
    }
    const events = await api('GET', 'audit?limit=100');
    out.push(h('h3', {}, 'audit: the newest ' + events.length + ' events'),
      h('table', { class: 'list audit' },
        h('tr', {}, ['#', 'when', 'who', 'what', 'where', 'card', 'release', ''].map((x) => h('th', {}, x))),
        events.map((ev) => h('tr', {},
          h('td', {}, ev.seq), h('td', {}, when(ev.at)), h('td', {}, ev.actor), h('td', {}, ev.kind),
          h('td', {}, ev.env || ''), h('td', {}, ev.card || ''), h('td', {}, ev.release ? releaseLink(ev.release) : ''),
          h('td', {}, ev.message)))));
    return out;
  }

  async function diff() {
    const st = await api('GET', 'environments');
    const names = st.environments.map((e) => e.env);
    const p = params();
    const from = p.get('from') || names[0];
    const to = p.get('to') || names[1] || names[0];
    const go = (a, b) => { location.hash = '#/diff?from=' + encodeURIComponent(a) + '&to=' + encodeURIComponent(b); };
    const out = [h('p', {}, 'from ', await envPicker(names, 'from', from, (e) => go(e.target.value, to)),
      ' to ', await envPicker(names, 'to', to, (e) => go(from, e.target.value)))];
    if (from && to) {
      const d = await api('GET', 'diff?from=' + encodeURIComponent(from) + '&to=' + encodeURIComponent(to));
      const part = (title, changes) => [h('h3', {}, title),
        changes.length ? h('table', { class: 'list diff' }, h('tr', {}, h('th', {}, ''), h('th', {}, from), h('th', {}, to)),
          changes.map((c) => h('tr', {}, h('td', {}, c.name), h('td', {}, c.a === null ? '—' : c.a), h('td', {}, c.b === null ? '—' : c.b))))
          : h('p', { class: 'muted' }, 'no difference')];
      out.push(h('p', {}, from, ': ', releaseLink(d.release_a), ' (', d.state_a || 'nothing', ') · ', to, ': ', releaseLink(d.release_b), ' (', d.state_b || 'nothing', ')'),
        ...part('cards', d.cards), ...part('services', d.services), ...part('vars', d.vars));
    }
    return out;
  }

  const PAGES = { board, pipeline, canary, releases, release, history, diff };

  // ---- rendering and live updates -----------------------------------------

  async function render() {
    const seq = ++renderSeq;
    clearTimeout(poll);
    const [path] = location.hash.replace(/^#\/?/, '').split('?');
    const [name, arg] = path.split('/');
    const fn = PAGES[name] || board;
    for (const a of document.querySelectorAll('nav a')) {
      a.classList.toggle('here', a.getAttribute('href') === '#/' + (PAGES[name] ? name : 'board'));
    }
    try {
      if (name !== 'board' && PAGES[name]) await whoAmI();
      const nodes = await fn(arg ? decodeURIComponent(arg) : undefined);
      // A newer render started meanwhile: it wins.
      if (seq !== renderSeq) return;
      page.replaceChildren(...nodes);
      page.dataset.page = PAGES[name] ? name : 'board';
      page.dataset.rendered = String(seq);
      if (page.dataset.page === 'board' && !performance.getEntriesByName('board-shown').length) {
        performance.mark('board-shown');
      }
    } catch (e) {
      if (seq !== renderSeq) return;
      page.replaceChildren(h('p', { class: 'error' }, e.message));
    }
  }

  // Several events in a burst make one re-render. A dialog being answered
  // is not torn down under the user.
  function refresh() {
    clearTimeout(pending);
    pending = setTimeout(() => {
      if (document.getElementById('confirm').open) return refresh();
      render();
    }, 100);
  }

  let stream = null;

  function follow() {
    const live = document.getElementById('live');
    const es = new EventSource('/api/v1/events');
    stream = es;
    es.onopen = () => { live.className = 'live on'; live.title = 'live: following the event stream'; };
    es.onerror = () => { live.className = 'live'; live.title = 'reconnecting to the event stream…'; };
    const seen = () => refresh();
    for (const kind of EVENT_KINDS) es.addEventListener(kind, seen);
    es.onmessage = seen;
  }

  window.addEventListener('hashchange', render);
  // A page left behind (kept in the back-forward cache) must not hold its
  // stream open: browsers allow a host six HTTP/1.1 connections.
  window.addEventListener('pagehide', () => { if (stream) stream.close(); stream = null; });
  window.addEventListener('pageshow', (e) => { if (e.persisted) { follow(); render(); } });
  render();
  follow();
})();
