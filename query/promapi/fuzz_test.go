package promapi_test

import (
	"testing"

	"github.com/meshscope/meshscope/query/promapi"
)

// FuzzParseTimeAndDuration: the API's time and duration decoders never
// panic, and accept what Prometheus accepts.
func FuzzParseTimeAndDuration(f *testing.F) {
	for _, s := range []string{"1767268800", "1767268800.123", "2026-01-01T12:00:00Z", "5m", "1h30m", "0.5", "NaN", "1e300", "-Inf", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, _ = promapi.ParseTime(s)
		if d, err := promapi.ParseDuration(s); err == nil && s == "" {
			t.Errorf("empty duration accepted as %v", d)
		}
	})
}
