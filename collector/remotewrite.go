package collector

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/golang/snappy"
	remoteapi "github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/prompb"
	"google.golang.org/protobuf/encoding/protowire"
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
		c.refuseUnread(w, r, code, func() { http.Error(w, "remote write: "+err.Error(), code) })
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
	if c.sinks.Metadata != nil {
		if mt, err := remoteapi.ParseProtoMsg(r.Header.Get("Content-Type")); err == nil && mt == remoteapi.WriteV1MessageType {
			c.remoteWriteV1Metadata(body, n)
		}
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	c.remoteWrite.ServeHTTP(w, r)
}

// remoteWriteV1Metadata records the metadata field of a remote write 1.0
// request (Prometheus sends it every metadata_config.send_interval, often
// in requests of its own). It decodes only that field; whatever is wrong
// with the request is left to Prometheus' handler to answer.
func (c *Collector) remoteWriteV1Metadata(compressed []byte, decodedLen int) {
	if r := c.cfg.MaxRequestBytes; int64(decodedLen) > r {
		return
	}
	raw, err := snappy.Decode(nil, compressed)
	if err != nil {
		return
	}
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return
		}
		raw = raw[n:]
		if num != 3 || typ != protowire.BytesType { // WriteRequest.metadata
			if n = protowire.ConsumeFieldValue(num, typ, raw); n < 0 {
				return
			}
			raw = raw[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(raw)
		if n < 0 {
			return
		}
		raw = raw[n:]
		var m prompb.MetricMetadata
		if err := m.Unmarshal(v); err != nil {
			return
		}
		c.sinks.Metadata.SetMetadata(m.MetricFamilyName, metadata.Metadata{
			Type: model.MetricType(strings.ToLower(m.Type.String())),
			Unit: m.Unit,
			Help: m.Help,
		})
	}
}
