package collector

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"github.com/golang/snappy"
)

// handleRemoteWrite admits a Prometheus remote-write request as the OTLP
// receivers do (memory limit, body deadlines, max_request_bytes before and
// after snappy) and hands it to Prometheus' own receiver.
func (c *Collector) handleRemoteWrite(w http.ResponseWriter, r *http.Request) {
	body, res, err := c.readBody(w, r, "")
	if err != nil {
		code, _, _ := c.bodyError(w, err)
		if code == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", fmt.Sprint(c.retryAfterSeconds()))
		}
		http.Error(w, "remote write: "+err.Error(), code)
		return
	}
	defer res.done()
	n, err := snappy.DecodedLen(body)
	switch {
	case err != nil:
		http.Error(w, "remote write: snappy body: "+err.Error(), http.StatusBadRequest)
		return
	case int64(n) > c.cfg.MaxRequestBytes:
		http.Error(w, fmt.Sprintf("remote write: decompressed body of %d bytes exceeds max_request_bytes=%d", n, c.cfg.MaxRequestBytes), http.StatusRequestEntityTooLarge)
		return
	}
	if err := res.grow(int64(n)); err != nil {
		w.Header().Set("Retry-After", fmt.Sprint(c.retryAfterSeconds()))
		http.Error(w, "remote write: "+err.Error(), http.StatusTooManyRequests)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	c.remoteWrite.ServeHTTP(w, r)
}
