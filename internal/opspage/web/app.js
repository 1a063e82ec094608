// rivermon operations page. Plain JavaScript, no build step, nothing from
// elsewhere. Every string from the registry or the alerts reaches the page
// through textContent or setAttribute, never as markup.
'use strict';
(() => {
  const POLL_MS = 2000;       // the overview, while the page is open
  const SERIES_MS = 60000;    // a station's last 48 h, while its view is open
  const SVG = 'http://www.w3.org/2000/svg';
  const LANG_KEY = 'rivermon.lang';

  const TEXT = {
    en: {
      title: 'rivermon · Shigatse rivers', lang: '中文', station: 'Station', state: 'State', online: 'Online',
      lastSeen: 'Last seen', battery: 'Battery', signal: 'Signal', enclosure: 'Enclosure',
      device: 'Battery · signal · enclosure',
      values: 'Newest values', eflow: 'Ecological flow today', dead: 'Dead letters (24 h)', seq: 'Sequence gaps',
      critical: 'critical', warning: 'warning', info: 'info', ok: 'OK', silent: 'silent',
      stations: 'stations', yes: 'yes', no: 'no', unknown: '—', never: 'never',
      updated: 'updated', lost: 'No answer from rivermon since', lostNever: 'No answer from rivermon yet',
      back: '← All stations', alerts: 'Active alerts', noAlerts: 'No active alerts', device: 'Device',
      received: 'Last message', statusAt: 'Status report', river: 'River', county: 'County', elevation: 'Elevation',
      last48: 'Last 48 hours', noData: 'no data', loading: 'loading…', history: 'History not available',
      since: 'since', value: 'value', threshold: 'threshold', none: 'none', repeats: 'repeats',
      unknownStation: 'No such station', wq: 'Water quality', compliant: 'on target so far', notCompliant: 'below target so far',
      coverage: 'coverage', target: 'target', legendSilent: 'silent (no data, or offline)', legendNone: 'no alert',
      justNow: 'just now', minAgo: ' min ago', hAgo: ' h ago', dAgo: ' d ago', inFuture: 'ahead of now',
      qc3: 'QC suspect', qc4: 'QC failed', class: 'Class ',
    },
    zh: {
      title: 'rivermon · 日喀则河流监测值班', lang: 'English', station: '断面', state: '状态', online: '在线',
      lastSeen: '最新数据', battery: '电池', signal: '信号', enclosure: '机箱温度',
      device: '电池 · 信号 · 机箱温度',
      values: '最新数值', eflow: '今日生态流量', dead: '死信（24 小时）', seq: '序号缺失',
      critical: '严重', warning: '警告', info: '提示', ok: '正常', silent: '无数据',
      stations: '个断面', yes: '是', no: '否', unknown: '—', never: '从未',
      updated: '更新于', lost: 'rivermon 无响应，数据截至', lostNever: 'rivermon 尚未响应',
      back: '← 全部断面', alerts: '当前告警', noAlerts: '无告警', device: '设备',
      received: '最近消息', statusAt: '状态报告', river: '河流', county: '县', elevation: '海拔',
      last48: '最近 48 小时', noData: '无数据', loading: '加载中…', history: '历史数据不可用',
      since: '开始于', value: '数值', threshold: '阈值', none: '无', repeats: '重复',
      unknownStation: '没有这个断面', wq: '水质', compliant: '目前达标', notCompliant: '目前不达标',
      coverage: '覆盖率', target: '目标', legendSilent: '无数据（静默或离线）', legendNone: '无告警',
      justNow: '刚刚', minAgo: ' 分钟前', hAgo: ' 小时前', dAgo: ' 天前', inFuture: '晚于当前时间',
      qc3: '质控可疑', qc4: '质控失败', class: '',
    },
  };
  const PARAMS = {
    level_m: ['Level', '水位', 'm'], flow_m3s: ['Flow', '流量', 'm³/s'], flow_rated_m3s: ['Rated flow', '推算流量', 'm³/s'],
    velocity_ms: ['Velocity', '流速', 'm/s'], volume_m3: ['Volume', '水量', 'm³'], water_temp_c: ['Water temp.', '水温', '°C'],
    ph: ['pH', 'pH', ''], do_mgl: ['DO', '溶解氧', 'mg/L'], cond_uscm: ['Conductivity', '电导率', 'µS/cm'],
    turb_ntu: ['Turbidity', '浊度', 'NTU'], codmn_mgl: ['CODMn', '高锰酸盐指数', 'mg/L'], nh3n_mgl: ['NH₃-N', '氨氮', 'mg/L'],
    tp_mgl: ['TP', '总磷', 'mg/L'], tn_mgl: ['TN', '总氮', 'mg/L'], rain_mm: ['Rain', '降水量', 'mm'],
    rain_total_mm: ['Rain total', '累计雨量', 'mm'],
  };
  const ALERTS = {
    WaterLevelWarning: ['Water level above warning', '超警戒水位'],
    WaterLevelCritical: ['Water level above critical', '超危急水位'],
    WaterLevelRisingFast: ['Water level rising fast', '水位快速上涨'],
    EcologicalFlowBelowTarget: ['Ecological flow below target', '生态流量低于目标'],
    EcologicalFlowBelowWarning: ['Ecological flow below early warning', '生态流量低于预警'],
    RainfallHeavy: ['Heavy rainfall', '短时强降水'],
    WaterQualityWorseThanTarget: ['Water quality worse than target', '水质劣于目标'],
    StationSilent: ['Station silent', '测站无数据'],
    SensorFault: ['Sensor fault', '传感器故障'],
    LowBattery: ['Low battery', '电池电压低'],
  };
  const ROMAN = ['', 'I', 'II', 'III', 'IV', 'V'];
  // Codes the table always shows; any other only when QC doubts it (the
  // station view shows them all).
  const MAIN = ['level_m', 'flow_m3s', 'flow_rated_m3s', 'water_temp_c', 'rain_mm'];
  // Codes charted in the station view, in this order; the others are not.
  const CHARTED = ['level_m', 'flow_m3s', 'flow_rated_m3s', 'velocity_ms', 'water_temp_c', 'ph', 'do_mgl', 'cond_uscm',
    'turb_ntu', 'codmn_mgl', 'nh3n_mgl', 'tp_mgl', 'tn_mgl', 'rain_mm'];

  let lang = pickLang();
  let data = null;          // the latest overview
  let lastOK = null;        // when it came
  let failure = null;       // why the last poll failed
  let series = null;        // {station, answer | error}
  let seriesTimer = null;
  let mapKey = '';          // what the map shows: redrawn only when it changes

  function pickLang() {
    let l = null;
    try { l = localStorage.getItem(LANG_KEY); } catch (e) { /* storage off: not remembered */ }
    if (l === 'en' || l === 'zh') return l;
    return (navigator.language || '').toLowerCase().startsWith('zh') ? 'zh' : 'en';
  }
  function t(key) { return TEXT[lang][key] ?? TEXT.en[key] ?? key; }
  function nameOf(x) { return lang === 'zh' ? x.name : x.name_en; }
  function otherName(x) { return lang === 'zh' ? x.name_en : x.name; }
  function param(code) { const p = PARAMS[code]; return p ? (lang === 'zh' ? p[1] : p[0]) : code; }
  function unit(code) { const p = PARAMS[code]; return p ? p[2] : ''; }
  function alertName(a) {
    const n = a.labels.alertname, tr = ALERTS[n];
    return tr ? (lang === 'zh' ? tr[1] : tr[0]) : n;
  }
  function level(s) { return s.worst || 'ok'; }

  // el builds an element; strings among children become text nodes.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }
  function sv(tag, attrs, ...children) {
    const e = document.createElementNS(SVG, tag);
    setAttrs(e, attrs);
    append(e, children);
    return e;
  }
  function setAttrs(e, attrs) {
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      e.setAttribute(k, String(v));
    }
  }
  function append(e, children) {
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }
  function clear(e) { while (e.firstChild) e.removeChild(e.firstChild); }
  function $(id) { return document.getElementById(id); }

  function fmt(v, code) {
    if (v === null || v === undefined || !isFinite(v)) return '—';
    const a = Math.abs(v);
    const digits = code === 'ph' ? 2 : a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 2 : 3;
    return Number(v.toFixed(digits)).toLocaleString(lang === 'zh' ? 'zh-CN' : 'en', { maximumFractionDigits: digits });
  }
  function withUnit(v, code) { const u = unit(code); return fmt(v, code) + (u ? ' ' + u : ''); }
  function when(ts) {
    if (!ts) return t('never');
    const d = new Date(ts);
    return d.toLocaleString(lang === 'zh' ? 'zh-CN' : 'en-GB', { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  }
  function ago(ts) {
    if (!ts) return t('never');
    const s = (Date.now() - new Date(ts).getTime()) / 1000;
    if (s < -300) return t('inFuture');
    if (s < 60) return t('justNow');
    if (s < 3600) return Math.floor(s / 60) + t('minAgo');
    if (s < 172800) return Math.floor(s / 3600) + t('hAgo');
    return Math.floor(s / 86400) + t('dAgo');
  }
  function timeEl(ts) { return el('time', { datetime: ts || null, title: ts ? when(ts) : null }, ago(ts)); }
  function wqClass(c) {
    if (!c) return '—';
    if (lang === 'zh') return c >= 6 ? '劣Ⅴ类' : ['', 'Ⅰ', 'Ⅱ', 'Ⅲ', 'Ⅳ', 'Ⅴ'][c] + '类';
    return c >= 6 ? 'worse than V' : t('class') + ROMAN[c];
  }

  // State of a station: its badge and its row's rank (problems first).
  function badges(s) {
    const out = [];
    const lv = level(s);
    if (lv !== 'ok' || !s.silent) out.push(el('span', { class: 'badge lvl-' + lv }, t(lv)), ' ');
    if (s.silent) out.push(el('span', { class: 'badge silent' }, t('silent')));
    return out;
  }
  function rank(s) {
    const r = { critical: 0, warning: 1, info: 3, ok: 4 }[level(s)] ?? 4;
    return s.silent && r > 1 ? 2 : r;
  }

  // ----- the schematic -----------------------------------------------------

  // project places the stations on a plane: longitude scaled by the cosine
  // of the mean latitude, north up, 1000 units wide.
  function project(stations) {
    const lats = stations.map(s => s.lat), lons = stations.map(s => s.lon);
    const lat0 = lats.reduce((a, b) => a + b, 0) / lats.length;
    const kx = Math.cos(lat0 * Math.PI / 180);
    const minX = Math.min(...lons) * kx, maxX = Math.max(...lons) * kx;
    const minY = -Math.max(...lats), maxY = -Math.min(...lats);
    const scale = 1000 / Math.max(maxX - minX, 0.01);
    const pos = new Map();
    for (const s of stations) pos.set(s.id, [(s.lon * kx - minX) * scale, (-s.lat - minY) * scale]);
    return { pos, width: 1000, height: Math.max((maxY - minY) * scale, 120) };
  }

  // beside places a label right of x, or left of it near the right edge.
  function beside(x, width, gap) {
    return x > width * 0.7 ? { x: x - gap, 'text-anchor': 'end' } : { x: x + gap };
  }

  function drawMap() {
    const key = lang + JSON.stringify(data.stations.map(s => [s.id, s.lat, s.lon, level(s), s.silent, s.name, s.name_en])) +
      JSON.stringify(data.rivers);
    if (key === mapKey) return; // keeps a tooltip or focus in place between polls
    mapKey = key;
    const svg = $('map');
    clear(svg);
    const { pos, width, height } = project(data.stations);
    const pad = 60;
    svg.setAttribute('viewBox', `${-pad} ${-pad} ${width + 2 * pad} ${height + 2 * pad}`);
    svg.setAttribute('aria-label', t('title'));
    const defs = sv('defs', {},
      sv('pattern', { id: 'hatch', width: 6, height: 6, patternUnits: 'userSpaceOnUse', patternTransform: 'rotate(45)' },
        sv('rect', { width: 6, height: 6, fill: '#e0e0e0' }),
        sv('line', { x1: 0, y1: 0, x2: 0, y2: 6, stroke: '#757575', 'stroke-width': 3 })));
    svg.append(defs);
    // Rivers: a line through their stations in registry order (upstream to
    // downstream), named at their first station.
    const rivers = new Map(data.rivers.map(r => [r.id, r]));
    const labelled = new Set();
    for (const r of data.rivers) {
      const pts = data.stations.filter(s => s.river === r.id).map(s => pos.get(s.id));
      if (pts.length === 0) continue;
      if (pts.length > 1) svg.append(sv('polyline', { class: 'river', points: pts.map(p => p.join(',')).join(' ') }));
      const [x, y] = pts[0];
      svg.append(sv('text', { class: 'river-label', ...beside(x, width, 14), y: y + 34, 'font-size': 22 }, nameOf(r)));
      labelled.add(r.id);
    }
    // Markers, the ones that need attention on top and named.
    const order = [...data.stations].sort((a, b) => rank(b) - rank(a));
    for (const s of order) {
      const [x, y] = pos.get(s.id);
      const lv = level(s);
      const river = rivers.get(s.river);
      const tip = `${nameOf(s)} (${s.id})${river ? ' · ' + nameOf(river) : ''} · ${t(lv)}${s.silent ? ' · ' + t('silent') : ''}`;
      const a = sv('a', { href: '#/station/' + encodeURIComponent(s.id), 'aria-label': tip },
        sv('circle', {
          class: 'marker lvl-' + lv + (s.silent ? ' silent' : ''), cx: x, cy: y, r: 15,
          'data-station': s.id, 'data-level': lv, 'data-silent': s.silent ? 'true' : 'false',
        }, sv('title', {}, tip)));
      svg.append(a);
      if (lv !== 'ok' || s.silent) {
        svg.append(sv('text', { class: 'station-label', ...beside(x, width, 20), y: y - 14, 'font-size': 22 }, nameOf(s)));
      }
    }
    const legend = $('legend');
    clear(legend);
    for (const [cls, label] of [['lvl-critical', t('critical')], ['lvl-warning', t('warning')], ['lvl-ok', t('legendNone')], ['lvl-ok silent', t('legendSilent')]]) {
      const icon = sv('svg', { viewBox: '0 0 20 20', 'aria-hidden': 'true' }, sv('circle', { cx: 10, cy: 10, r: 8, class: 'marker ' + cls }));
      legend.append(el('li', {}, icon, label));
    }
  }

  // ----- the table -----------------------------------------------------------

  const COLUMNS = ['station', 'state', 'online', 'lastSeen', 'device', 'values', 'eflow', 'dead', 'seq'];

  function valueChips(s, codes) {
    const chips = [];
    for (const code of codes) {
      const v = s.values[code];
      if (!v) continue;
      const title = [when(v.time), v.qc === 3 ? t('qc3') : v.qc === 4 ? t('qc4') : null].filter(Boolean).join(' · ');
      chips.push(el('span', { class: 'chip qc-' + v.qc, title, 'data-code': code },
        el('span', { class: 'k' }, param(code)), withUnit(v.value, code)));
    }
    if (s.wq_class) chips.push(el('span', { class: 'chip' }, el('span', { class: 'k' }, t('wq')), wqClass(s.wq_class)));
    return chips.length ? el('div', { class: 'chips' }, chips) : el('span', { class: 'muted' }, t('noData'));
  }
  function codesOf(s) {
    const codes = [...s.params];
    if (s.values.flow_rated_m3s && !codes.includes('flow_m3s')) codes.push('flow_rated_m3s');
    return codes;
  }
  function eflowText(s) {
    const e = s.eflow_today;
    if (!e) return el('span', { class: 'muted' }, s.limits.eflow_m3s !== undefined ? t('noData') : '—');
    return el('span', { class: e.compliant_so_far ? 'good' : 'bad',
      title: `${e.compliant_so_far ? t('compliant') : t('notCompliant')} · ${t('coverage')} ${Math.round(e.coverage * 100)} %` },
      `${e.compliant_so_far ? '✓' : '✗'} ${fmt(e.mean_flow_m3s, 'flow_m3s')} / ${withUnit(e.target_m3s, 'flow_m3s')}`);
  }
  function deadChips(s) {
    const entries = Object.entries(s.dead_letters_24h || {}).sort((a, b) => b[1] - a[1]);
    if (!entries.length) return el('span', { class: 'muted' }, t('none'));
    return el('div', { class: 'chips' }, entries.map(([reason, n]) => el('span', { class: 'chip dead', 'data-reason': reason }, `${reason} ${n}`)));
  }
  function statusValue(s, key, code, u) {
    const v = s.status && s.status[key];
    if (v === undefined || v === null) return '—';
    return fmt(v, code) + ' ' + u;
  }
  function onlineText(s) {
    if (s.online === null || s.online === undefined) return el('span', { class: 'muted' }, t('unknown'));
    return el('span', { class: s.online ? 'good' : 'bad' }, s.online ? t('yes') : t('no'));
  }

  function cell(col, s) {
    const river = data.rivers.find(r => r.id === s.river);
    switch (col) {
      case 'station':
        return [el('a', { href: '#/station/' + encodeURIComponent(s.id), class: 'name' }, nameOf(s)),
          el('span', { class: 'sub' }, river ? nameOf(river) : s.river)];
      case 'state': return badges(s);
      case 'online': return onlineText(s);
      case 'lastSeen': return timeEl(s.last_seen);
      case 'device':
        if (!s.status || ['battery_v', 'signal_dbm', 'enclosure_temp_c'].every(k => s.status[k] === undefined)) return el('span', { class: 'muted' }, '—');
        return el('div', { class: 'device' },
          el('span', { title: t('battery') }, statusValue(s, 'battery_v', 'battery_v', 'V')),
          el('span', { title: t('signal') }, statusValue(s, 'signal_dbm', 'signal_dbm', 'dBm')),
          el('span', { title: t('enclosure') }, statusValue(s, 'enclosure_temp_c', 'enclosure_temp_c', '°C')));
      case 'values': return valueChips(s, codesOf(s).filter(c => MAIN.includes(c) || (s.values[c] && s.values[c].qc >= 3)));
      case 'eflow': return eflowText(s);
      case 'dead': return deadChips(s);
      case 'seq': return s.seq.gaps ? el('span', { class: 'bad' }, String(s.seq.gaps)) : el('span', { class: 'muted' }, '0');
    }
    return '';
  }

  function drawTable() {
    const head = $('stations-head');
    clear(head);
    for (const c of COLUMNS) head.append(el('th', { scope: 'col', class: 'col-' + c }, t(c)));
    const body = $('stations-body');
    clear(body);
    const rows = [...data.stations].map((s, i) => [s, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]);
    for (const [s] of rows) {
      const lv = level(s);
      const cls = lv === 'critical' || lv === 'warning' ? 'row-' + lv : s.silent ? 'row-silent' : '';
      const tr = el('tr', { class: cls || null, 'data-station': s.id });
      for (const c of COLUMNS) {
        const quiet = (c === 'dead' && !Object.keys(s.dead_letters_24h || {}).length) || (c === 'seq' && !s.seq.gaps) ||
          (c === 'eflow' && s.limits.eflow_m3s === undefined);
        tr.append(el('td', { 'data-label': t(c), class: 'col-' + c + (quiet ? ' quiet' : '') }, cell(c, s)));
      }
      body.append(tr);
    }
  }

  // ----- the station view ----------------------------------------------------

  function drawStation(id) {
    const main = $('station');
    clear(main);
    main.append(el('a', { href: '#/', class: 'back' }, t('back')));
    const s = data.stations.find(x => x.id === id);
    if (!s) {
      main.append(el('section', {}, el('h2', {}, t('unknownStation')), el('p', { class: 'muted' }, id)));
      return;
    }
    const river = data.rivers.find(r => r.id === s.river);
    main.append(el('section', { 'data-station': s.id },
      el('div', { class: 'head' }, el('h2', { id: 'station-name' }, nameOf(s)), badges(s)),
      el('p', { class: 'muted' }, `${otherName(s)} · ${river ? nameOf(river) : s.river} · ${s.county} · ${fmt(s.elevation_m, 'elevation')} m · ${s.id}`)));

    const alerts = s.active_alerts || [];
    const alertList = alerts.length ? el('ul', { class: 'alerts' }, alerts.map(a => el('li', { 'data-alert': a.labels.alertname },
      el('span', { class: 'badge lvl-' + a.labels.severity }, t(a.labels.severity)), ' ',
      el('strong', {}, alertName(a)), a.labels.param ? ` (${param(a.labels.param)})` : '', ' ',
      el('span', { class: 'muted' }, `${t('since')} `, timeEl(a.startsAt)),
      el('span', { class: 'summary' }, a.annotations.summary || ''),
      el('span', { class: 'summary' }, `${t('value')} ${a.annotations.value ?? '—'} · ${t('threshold')} ${a.annotations.threshold ?? '—'}`))))
      : el('p', { class: 'muted' }, t('noAlerts'));

    const device = el('dl', {},
      el('dt', {}, t('online')), el('dd', {}, onlineText(s)),
      el('dt', {}, t('lastSeen')), el('dd', {}, timeEl(s.last_seen)),
      el('dt', {}, t('received')), el('dd', {}, timeEl(s.last_received)),
      el('dt', {}, t('battery')), el('dd', {}, statusValue(s, 'battery_v', 'battery_v', 'V')),
      el('dt', {}, t('signal')), el('dd', {}, statusValue(s, 'signal_dbm', 'signal_dbm', 'dBm')),
      el('dt', {}, t('enclosure')), el('dd', {}, statusValue(s, 'enclosure_temp_c', 'enclosure_temp_c', '°C')),
      el('dt', {}, t('statusAt')), el('dd', {}, timeEl(s.status && s.status.time)),
      el('dt', {}, t('eflow')), el('dd', {}, eflowText(s)),
      el('dt', {}, t('dead')), el('dd', {}, deadChips(s)),
      el('dt', {}, t('seq')), el('dd', {}, `${s.seq.gaps} · ${t('repeats')} ${s.seq.repeats}`));

    main.append(el('div', { class: 'cols' },
      el('section', { id: 'station-alerts' }, el('h3', {}, t('alerts')), alertList),
      el('section', {}, el('h3', {}, t('values')), valueChips(s, codesOf(s))),
      el('section', {}, el('h3', {}, t('device')), device)));
    main.append(el('section', { id: 'charts-panel' }, el('h3', {}, t('last48')), drawCharts(s)));
  }

  function drawCharts(s) {
    if (!series || series.station !== s.id) return el('p', { class: 'muted' }, t('loading'));
    if (series.error) return el('p', { class: 'bad' }, `${t('history')}: ${series.error}`);
    const ans = series.answer;
    const from = new Date(ans.from).getTime(), to = new Date(ans.to).getTime();
    const codes = CHARTED.filter(c => ans.series[c]);
    return el('div', { class: 'charts' }, codes.map(c => chart(s, c, ans.series[c], from, to)));
  }

  // chart draws one code's values: a line through those that did not fail
  // QC, broken where data is missing, failed values as red dots, and the
  // station's limits on that code as dashed lines.
  function chart(s, code, v, from, to) {
    const W = 320, H = 120, L = 44, R = 6, T = 6, B = 18;
    const limits = [];
    if (code === 'level_m') {
      if (s.limits.level_warning_m !== undefined) limits.push(['limit-warning', s.limits.level_warning_m]);
      if (s.limits.level_critical_m !== undefined) limits.push(['limit-critical', s.limits.level_critical_m]);
    }
    if ((code === 'flow_m3s' || code === 'flow_rated_m3s') && s.limits.eflow_m3s !== undefined) limits.push(['limit-eflow', s.limits.eflow_m3s]);
    const good = v.v.filter((_, i) => v.qc[i] !== 4);
    const newest = v.v.length ? v.v[v.v.length - 1] : null;
    const box = el('div', { class: 'chart', 'data-code': code },
      el('div', { class: 'title' }, el('span', {}, `${param(code)}${unit(code) ? ' (' + unit(code) + ')' : ''}`),
        el('strong', {}, newest === null ? t('noData') : fmt(newest, code))));
    if (!v.t.length) return box;
    let lo = Math.min(...(good.length ? good : v.v)), hi = Math.max(...(good.length ? good : v.v));
    for (const [, x] of limits) { if (x < hi + (hi - lo) * 0.5 + 0.1 * Math.abs(hi)) { lo = Math.min(lo, x); hi = Math.max(hi, x); } }
    if (hi - lo < 1e-9) { hi += 0.5; lo -= 0.5; }
    const px = ms => L + (ms - from) / Math.max(to - from, 1) * (W - L - R);
    const py = y => T + (hi - y) / (hi - lo) * (H - T - B);
    const svg = sv('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': param(code) },
      sv('rect', { class: 'frame', x: L, y: T, width: W - L - R, height: H - T - B }),
      sv('text', { class: 'axis', x: L - 4, y: T + 8, 'text-anchor': 'end' }, fmt(hi, code)),
      sv('text', { class: 'axis', x: L - 4, y: H - B, 'text-anchor': 'end' }, fmt(lo, code)),
      sv('text', { class: 'axis', x: L, y: H - 4 }, when(new Date(from).toISOString())),
      sv('text', { class: 'axis', x: W - R, y: H - 4, 'text-anchor': 'end' }, when(new Date(to).toISOString())));
    for (const [cls, x] of limits) {
      if (x >= lo && x <= hi) svg.append(sv('line', { class: cls, x1: L, x2: W - R, y1: py(x), y2: py(x) }));
    }
    // A line breaks where values are missing: a step three times the
    // series' usual one (an hourly analyser's is an hour), at least three
    // reporting intervals. A value alone between gaps is a dot.
    const steps = v.t.slice(1).map((x, i) => x - v.t[i]).sort((a, b) => a - b);
    const usual = steps.length ? steps[Math.floor(steps.length / 2)] : 0;
    const gap = Math.max(3 * usual, 3 * (s.interval_s || 300) * 1000);
    let run = [], prev = null;
    const flush = () => {
      if (run.length > 1) svg.append(sv('polyline', { class: 'line', points: run.map(p => p.join(',')).join(' ') }));
      else if (run.length === 1) svg.append(sv('circle', { class: 'dot', cx: run[0][0], cy: run[0][1], r: 1.8 }));
      run = [];
    };
    for (let i = 0; i < v.t.length; i++) {
      if (v.qc[i] === 4) {
        svg.append(sv('circle', { class: 'fail', cx: px(v.t[i]), cy: py(Math.min(Math.max(v.v[i], lo), hi)), r: 2.5 }));
        continue;
      }
      if (prev !== null && v.t[i] - prev > gap) flush();
      run.push([px(v.t[i]).toFixed(1), py(v.v[i]).toFixed(1)]);
      prev = v.t[i];
    }
    flush();
    box.append(svg);
    return box;
  }

  async function loadSeries(id) {
    clearTimeout(seriesTimer);
    try {
      series = { station: id, answer: await fetchJSON('api/v1/stations/' + encodeURIComponent(id) + '/series?hours=48') };
    } catch (e) {
      series = { station: id, error: String(e.message || e) };
    }
    if (route().station === id) {
      render();
      seriesTimer = setTimeout(() => loadSeries(id), SERIES_MS);
    }
  }

  // ----- frame, routing, polling ---------------------------------------------

  function route() {
    const m = /^#\/station\/([^/]+)$/.exec(location.hash);
    return m ? { station: decodeURIComponent(m[1]) } : {};
  }

  function drawHeader() {
    document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
    document.title = t('title');
    $('title').textContent = t('title');
    $('lang').textContent = t('lang');
    $('lang').setAttribute('aria-label', lang === 'zh' ? 'Switch to English' : '切换到中文');
    const counts = $('counts');
    clear(counts);
    if (data) {
      const n = k => data.stations.filter(s => level(s) === k).length;
      const silent = data.stations.filter(s => s.silent).length;
      append(counts, [el('span', { class: 'badge lvl-critical' }, `${n('critical')} ${t('critical')}`), ' ',
        el('span', { class: 'badge lvl-warning' }, `${n('warning')} ${t('warning')}`), ' ',
        el('span', { class: 'badge silent' }, `${silent} ${t('silent')}`), ' ',
        `${data.stations.length} ${t('stations')}`]);
    }
    $('updated').textContent = lastOK ? `${t('updated')} ${lastOK.toLocaleTimeString(lang === 'zh' ? 'zh-CN' : 'en-GB')}` : '';
    const banner = $('banner');
    banner.hidden = !failure;
    banner.textContent = failure ? `${lastOK ? t('lost') + ' ' + lastOK.toLocaleTimeString() : t('lostNever')} (${failure})` : '';
  }

  function render() {
    drawHeader();
    const r = route();
    $('overview').hidden = !!r.station || !data;
    $('station').hidden = !r.station || !data;
    if (!data) return;
    if (r.station) drawStation(r.station);
    else { drawMap(); drawTable(); }
    document.body.dataset.rendered = String(Number(document.body.dataset.rendered || 0) + 1);
  }

  // fetchJSON gives up after 10 s: a rivermon that stopped answering shows
  // as such rather than as a page that stopped updating.
  async function fetchJSON(url) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), 10000);
    try {
      const r = await fetch(url, { cache: 'no-store', signal: ctl.signal });
      let body = null;
      try { body = await r.json(); } catch (e) { /* not JSON: said below */ }
      if (!r.ok || body === null) throw new Error((body && body.error) || `${r.status} ${r.statusText}`);
      return body;
    } finally {
      clearTimeout(timer);
    }
  }

  async function poll() {
    try {
      data = await fetchJSON('api/v1/overview');
      lastOK = new Date();
      failure = null;
    } catch (e) {
      failure = String(e.message || e);
    }
    render();
    setTimeout(poll, POLL_MS);
  }

  function onRoute() {
    const r = route();
    if (r.station) { series = null; loadSeries(r.station); } else clearTimeout(seriesTimer);
    render();
    window.scrollTo(0, 0);
  }

  $('lang').addEventListener('click', () => {
    lang = lang === 'zh' ? 'en' : 'zh';
    try { localStorage.setItem(LANG_KEY, lang); } catch (e) { /* not remembered */ }
    render();
  });
  window.addEventListener('hashchange', onRoute);
  if (route().station) loadSeries(route().station);
  poll();
})();
