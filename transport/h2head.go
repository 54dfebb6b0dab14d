package transport

import (
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2/hpack"
)

// h2Head is what the OTLP/gRPC fast path reads of a request's header block,
// and whether the block is one it serves exactly as grpc.Server would.
// Anything grpc.Server refuses or treats specially (see grpc-go's
// http2Server.operateHeaders, and x/net's checks of header blocks) is left to
// it: the sniffer routes such a first request to grpc.Server, and the fast
// path hands a connection over at such a later one.
type h2Head struct {
	method, path, contentType, encoding string
	authorities, hosts                  int
	size                                int  // as HTTP/2 counts it: 32 bytes more per field
	sawRegular                          bool // a regular header was seen: no pseudo-header may follow
	other                               bool // a header the fast path does not serve
}

// h2Kind is what the fast path does with a request.
type h2Kind uint8

const (
	h2Other h2Kind = iota // not the fast path's: grpc.Server (or net/http) serves it
	h2Unary               // the fast path's: the UnaryHandler serves its method, or answers UNIMPLEMENTED
)

// kind sorts a request: a gRPC request with nothing grpc.Server would
// refuse, uncompressed or gzipped, is the fast path's.
func (h *h2Head) kind() h2Kind {
	_, validType := grpcSubtype(h.contentType)
	if h.other || !validType || h.method != "POST" ||
		h.encoding != "" && h.encoding != "identity" && h.encoding != "gzip" ||
		h.authorities > 1 || h.hosts > 1 || h.authorities+h.hosts == 0 ||
		h.size > h2MaxHeaderList {
		return h2Other
	}
	return h2Unary
}

// isGRPC reports whether the content type says gRPC, valid or not:
// grpc.Server answers an invalid one.
func (h *h2Head) isGRPC() bool { return strings.HasPrefix(h.contentType, "application/grpc") }

// grpcSubtype is grpc-go's grpcutil.ContentSubtype.
func grpcSubtype(contentType string) (string, bool) {
	const base = "application/grpc"
	if contentType == base {
		return "", true
	}
	if !strings.HasPrefix(contentType, base) {
		return "", false
	}
	switch contentType[len(base)] {
	case '+', ';':
		return contentType[len(base)+1:], true
	}
	return "", false
}

func (h *h2Head) field(f hpack.HeaderField) {
	h.size += len(f.Name) + len(f.Value) + 32
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		h.other = true
	}
	if strings.HasPrefix(f.Name, ":") {
		if h.sawRegular {
			h.other = true
		}
		switch f.Name {
		case ":method":
			h.method = f.Value
		case ":path":
			h.path = f.Value
		case ":authority":
			h.authorities++
		case ":scheme":
		default:
			h.other = true // :protocol, or an unknown pseudo-header
		}
		return
	}
	h.sawRegular = true
	if !validWireName(f.Name) {
		h.other = true
	}
	switch f.Name {
	case "content-type":
		h.contentType = f.Value
	case "grpc-encoding":
		h.encoding = f.Value
	case "host":
		h.hosts++
	case "grpc-timeout":
		// One that has run out when grpc.Server reads the headers gets
		// DEADLINE_EXCEEDED there: leave the short ones to it.
		d, ok := grpcTimeout(f.Value)
		h.other = h.other || !ok || d < time.Millisecond
	case "connection":
		h.other = true // malformed in HTTP/2: grpc.Server resets the stream
	case "te", "user-agent", "grpc-accept-encoding":
	default:
		if strings.HasSuffix(f.Name, "-bin") && !validBinHeader(f.Value) {
			h.other = true
		}
	}
}

// validWireName: HTTP/2 header names are lowercase tokens (RFC 9113 §8.2.1).
func validWireName(name string) bool {
	for i := 0; i < len(name); i++ {
		if c := name[i]; 'A' <= c && c <= 'Z' {
			return false
		}
	}
	return httpguts.ValidHeaderFieldName(name)
}

// grpcTimeout decodes a grpc-timeout (up to 8 digits and a unit) as
// grpc-go does; ok is false for one it refuses.
func grpcTimeout(v string) (d time.Duration, ok bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseUint(v[:len(v)-1], 10, 64)
	if err != nil {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(min(n, uint64(math.MaxInt64/unit))) * unit, true
}

// validBinHeader: binary metadata is base64, padded or not, as grpc-go
// decodes it.
func validBinHeader(v string) bool {
	var err error
	if len(v)%4 == 0 {
		_, err = base64.StdEncoding.DecodeString(v)
	} else {
		_, err = base64.RawStdEncoding.DecodeString(v)
	}
	return err == nil
}
