package collector

import (
	"context"
	"math"
	"os"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// softLimitHeadroom is the heap allowed above the server's own live heap
// and max_inflight_bytes before the garbage collector works harder: the
// garbage of requests already answered, which GOGC=100 would otherwise let
// grow to the size of the live heap itself.
const softLimitHeadroom = 128 << 20

// softLimitInterval is how often the soft limit follows the live heap.
const softLimitInterval = time.Second

// softLimit is the Go soft memory limit the collector asks for: the live
// heap that is not ingest (the live heap at the last GC minus what the
// requests in progress reserved then) plus max_inflight_bytes plus
// headroom. It follows the stores' own live heap, so a server whose
// stores hold much memory is not pushed into constant collection; only
// the transient garbage of ingest is bounded.
func softLimit(liveHeap, reserved, maxInflight int64) int64 {
	base := max(liveHeap-reserved, 0)
	return base + maxInflight + softLimitHeadroom
}

// runSoftMemoryLimit keeps Go's soft memory limit (debug.SetMemoryLimit)
// at softLimit until ctx ends, then restores the previous limit. It does
// nothing when GOMEMLIMIT is set: the operator's limit wins.
func (c *Collector) runSoftMemoryLimit(ctx context.Context) {
	if v := os.Getenv("GOMEMLIMIT"); v != "" {
		c.logger.Info("soft memory limit left to GOMEMLIMIT", "GOMEMLIMIT", v)
		return
	}
	prev := debug.SetMemoryLimit(-1)
	defer debug.SetMemoryLimit(prev)
	sample := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(softLimitInterval)
	defer t.Stop()
	var last int64
	for {
		rtmetrics.Read(sample)
		var live int64
		if sample[0].Value.Kind() == rtmetrics.KindUint64 {
			live = int64(min(sample[0].Value.Uint64(), math.MaxInt64))
		}
		limit := softLimit(live, c.mem.used.Load(), c.cfg.MaxInflightBytes)
		if limit != last {
			debug.SetMemoryLimit(limit)
			if last == 0 {
				c.logger.Info("soft memory limit follows the live heap", "limit_bytes", limit, "live_heap_bytes", live,
					"max_inflight_bytes", c.cfg.MaxInflightBytes, "headroom_bytes", softLimitHeadroom)
			}
			c.m.softLimit.Set(float64(limit))
			last = limit
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
