// usePoll: one GET every `every` ms (and again whenever bump changes, e.g.
// after an operator's action), for the pages that show a server's state
// (SLOs, rollouts, guards). Returns [data, error]; data stays on screen
// while the next answer loads.
import { useEffect, useState } from 'preact/hooks';
import { getJSON } from './api.js';

export function usePoll(url, every = 10000, bump = 0) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const [tick, setTick] = useState(0);
  useEffect(() => {
    if (!url) return undefined;
    const ac = new AbortController();
    getJSON(url, { signal: ac.signal })
      .then((d) => {
        setData(d);
        setError(null);
      })
      .catch((e) => e.name !== 'AbortError' && setError(e.message));
    const t = setTimeout(() => setTick((n) => n + 1), every);
    return () => {
      ac.abort();
      clearTimeout(t);
    };
  }, [url, tick, bump]);
  return [data, error];
}
