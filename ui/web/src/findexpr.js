// Find expressions for the topology page. An expression is either a plain
// name fragment ("cart") or conditions joined by "and" / "or" / "&&" / "||":
//   error_rate > 1%      p99 >= 250ms      rps < 0.5
//   health = failing     kind != service   name ~ pay   group = shop
// Numeric fields: rps, error_rate (fraction; "1%" means 0.01), p50, p95, p99
// (milliseconds; "1s" = 1000), bytes. Text fields: name, service, version,
// kind, health, mode, group ("~" is "contains").

const numeric = {
  rps: (n) => n.rps,
  error_rate: (n) => n.error_rate,
  errors: (n) => n.error_rate,
  p50: (n) => n.p50_ms,
  p95: (n) => n.p95_ms,
  p99: (n) => n.p99_ms,
  bytes: (n) => n.bytes_per_sec,
};
const text = {
  name: (n) => n.id,
  id: (n) => n.id,
  service: (n) => n.service,
  version: (n) => n.version || (n.versions || []).join(','),
  kind: (n) => n.kind,
  health: (n) => n.health,
  mode: (n) => n.mode,
  group: (n) => n.group || '',
};

const condRe = /^\s*([a-z_0-9]+)\s*(>=|<=|!=|==|=|>|<|~)\s*(.+?)\s*$/i;

function parseNumber(field, raw) {
  const m = /^(-?\d+(?:\.\d+)?)\s*(%|ms|s|us|µs)?$/.exec(raw);
  if (!m) throw new Error(`"${raw}" is not a number for ${field}`);
  let v = parseFloat(m[1]);
  const unit = m[2] || '';
  if (unit === '%') v /= 100;
  if (unit === 's') v *= 1000;
  if (unit === 'us' || unit === 'µs') v /= 1000;
  return v;
}

function parseCond(s) {
  const m = condRe.exec(s);
  if (!m) throw new Error(`cannot read "${s.trim()}": expected FIELD OP VALUE, e.g. error_rate > 1%`);
  const field = m[1].toLowerCase();
  const op = m[2] === '==' ? '=' : m[2];
  const raw = m[3].replace(/^["']|["']$/g, '');
  if (numeric[field]) {
    if (op === '~') throw new Error(`"~" works on text fields, not ${field}`);
    const want = parseNumber(field, raw);
    const get = numeric[field];
    return (n) => {
      const v = get(n) || 0;
      switch (op) {
        case '>': return v > want;
        case '>=': return v >= want;
        case '<': return v < want;
        case '<=': return v <= want;
        case '=': return v === want;
        case '!=': return v !== want;
      }
      return false;
    };
  }
  if (text[field]) {
    if (['>', '<', '>=', '<='].includes(op)) throw new Error(`${op} works on numbers, not ${field}`);
    const get = text[field];
    const want = raw.toLowerCase();
    return (n) => {
      const v = String(get(n) || '').toLowerCase();
      if (op === '~') return v.includes(want);
      if (op === '=') return v === want;
      return v !== want;
    };
  }
  throw new Error(`unknown field "${field}" (one of ${[...Object.keys(numeric), ...Object.keys(text)].join(', ')})`);
}

// compileFind returns a predicate over nodes (and edges: they have the same
// stats fields) or throws an Error naming what is wrong. An empty expression
// returns null (nothing to find).
export function compileFind(expr) {
  const s = (expr || '').trim();
  if (!s) return null;
  if (!/[<>=!~]/.test(s)) {
    const want = s.toLowerCase();
    return (n) => String(n.id).toLowerCase().includes(want);
  }
  const ors = s.split(/\s+or\s+|\s*\|\|\s*/i).map((part) =>
    part.split(/\s+and\s+|\s*&&\s*/i).map(parseCond));
  return (n) => ors.some((ands) => ands.every((c) => c(n)));
}
