package h2

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlockReader decodes a connection's header blocks (a HEADERS frame
// and the CONTINUATION frames after it) as x/net's Framer does with
// ReadMetaHeaders, with the same limits and errors, into one
// MetaHeadersFrame and field list reused from block to block: the Framer
// allocates the frame, a closure and a growing field list for every
// block. The fields are valid until the next block is read.
type headerBlockReader struct {
	fr      *http2.Framer
	dec     *hpack.Decoder
	maxList uint32 // SETTINGS_MAX_HEADER_LIST_SIZE we advertised
	mh      http2.MetaHeadersFrame

	// State of the block being decoded, read by emit.
	headersRemain, trailersRemain uint32
	sawRegular                    bool
	invalid                       error
}

func newHeaderBlockReader(fr *http2.Framer, maxList uint32) *headerBlockReader {
	if maxList == 0 {
		maxList = 16 << 20 // the Framer's default
	}
	r := &headerBlockReader{fr: fr, maxList: maxList}
	r.dec = hpack.NewDecoder(4096, r.emit)
	if int(maxList) > 0 {
		r.dec.SetMaxStringLength(int(maxList))
	}
	return r
}

// emit takes one decoded field: the checks and the size accounting of the
// Framer's readMetaFrame.
func (r *headerBlockReader) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		r.invalid = fmt.Errorf("invalid value for header field %q", hf.Name)
	}
	if strings.HasPrefix(hf.Name, ":") {
		if r.sawRegular {
			r.invalid = errors.New("pseudo header field after regular")
		}
	} else {
		r.sawRegular = true
		if !validWireFieldName(hf.Name) {
			r.invalid = fmt.Errorf("invalid header field name %q", hf.Name)
		}
	}
	if r.invalid != nil {
		r.dec.SetEmitEnabled(false)
		return
	}
	remain, size := &r.headersRemain, hf.Size()
	if hf.Name == "trailer" {
		// As the Framer counts a trailer field: each name it announces
		// costs a field's overhead.
		n := uint32(strings.Count(hf.Value, ",") + 1)
		remain, size = &r.trailersRemain, uint32(len(hf.Value))-n+1+n*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		r.dec.SetEmitEnabled(false)
		r.mh.Truncated = true
		r.headersRemain, r.trailersRemain = 0, 0
		return
	}
	*remain -= size
	r.mh.Fields = append(r.mh.Fields, hf)
}

// read decodes the block hf starts, reading its CONTINUATION frames. The
// errors are the Framer's: a http2.ConnectionError for a block that
// cannot be decoded or is far too large, a http2.StreamError for invalid
// fields.
func (r *headerBlockReader) read(hf *http2.HeadersFrame) (*http2.MetaHeadersFrame, error) {
	r.mh = http2.MetaHeadersFrame{HeadersFrame: hf, Fields: r.mh.Fields[:0]}
	r.headersRemain, r.trailersRemain = r.maxList, r.maxList
	r.sawRegular, r.invalid = false, nil
	r.dec.SetEmitEnabled(true)
	var frag interface {
		HeaderBlockFragment() []byte
		HeadersEnded() bool
	} = hf
	for {
		b := frag.HeaderBlockFragment()
		// A block far over the limit, or going on after an invalid
		// field, is not decoded further: the connection ends.
		if int64(len(b)) > 2*int64(r.headersRemain+r.trailersRemain) || r.invalid != nil {
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if _, err := r.dec.Write(b); err != nil {
			return nil, http2.ConnectionError(http2.ErrCodeCompression)
		}
		if frag.HeadersEnded() {
			break
		}
		f, err := r.fr.ReadFrame()
		if err != nil {
			return nil, err
		}
		cf, ok := f.(*http2.ContinuationFrame)
		if !ok { // the Framer checks the order itself; this is a backstop
			return nil, http2.ConnectionError(http2.ErrCodeProtocol)
		}
		frag = cf
	}
	if err := r.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if r.invalid != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: r.invalid}
	}
	if err := checkPseudoFields(r.mh.Fields); err != nil {
		return nil, http2.StreamError{StreamID: hf.StreamID, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return &r.mh, nil
}

// checkPseudoFields rejects unknown and repeated pseudo-header fields and
// a mix of request and response ones.
func checkPseudoFields(fields []hpack.HeaderField) error {
	var request, response bool
	for i, hf := range fields {
		if !strings.HasPrefix(hf.Name, ":") {
			break // pseudo-header fields come first (emit checked)
		}
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return fmt.Errorf("invalid pseudo-header %q", hf.Name)
		}
		for _, prev := range fields[:i] {
			if prev.Name == hf.Name {
				return fmt.Errorf("duplicate pseudo-header %q", hf.Name)
			}
		}
	}
	if request && response {
		return errors.New("mix of request and response pseudo headers")
	}
	return nil
}
