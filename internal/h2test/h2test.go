// Package h2test holds what the tests of traceport's one port share when
// they attack its HTTP/2 side: a hostile input (HPACKBomb) and the
// legitimate clients that must go on being served meanwhile
// (LegitExporters). Like net/http/httptest, only tests import it.
package h2test

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/traceport/traceport/internal/grpcraw"
)

// HPACKBomb is a request header block on stream: headers, then one 4 KB
// field called name, which enters HPACK's dynamic table, then references
// to that entry one byte each, up to size bytes; framed as HEADERS and
// CONTINUATIONs of 16 KiB.
func HPACKBomb(stream uint32, headers []hpack.HeaderField, name string, size int) []byte {
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range headers {
		enc.WriteField(f)
	}
	enc.WriteField(hpack.HeaderField{Name: name, Value: string(bytes.Repeat([]byte{'A'}, 4000))})
	block := hb.Bytes()
	for len(block) < size {
		block = append(block, 0x80|62) // the newest dynamic-table entry
	}
	var out bytes.Buffer
	fr := http2.NewFramer(&out, nil)
	for first := true; len(block) > 0; first = false {
		k := min(len(block), 16384)
		if first {
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: stream, BlockFragment: block[:k], EndHeaders: k == len(block)})
		} else {
			fr.WriteContinuation(stream, k == len(block), block[:k])
		}
		block = block[k:]
	}
	return out.Bytes()
}

// LegitExporters starts two OTLP/gRPC clients, each sending the Export
// request body every 50 ms with a deadline of a second, until stop is
// closed. The function it returns waits for them to end and says how many
// requests were answered (with a status answered accepts) of how many sent.
func LegitExporters(t testing.TB, addr string, body []byte, stop <-chan struct{}, answered func(codes.Code) bool) func() (ok, sent int) {
	var okN, sentN atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer conn.Close()
			for pause(stop, 50*time.Millisecond) {
				ctx, cancel := context.WithTimeout(context.Background(), time.Second)
				var resp grpcraw.Message
				err := conn.Invoke(ctx, grpcraw.OTLPExport, &grpcraw.Message{Data: body}, &resp, grpc.ForceCodecV2(grpcraw.Codec{}))
				cancel()
				sentN.Add(1)
				if answered(status.Code(err)) {
					okN.Add(1)
				}
			}
		}()
	}
	return func() (int, int) { wg.Wait(); return int(okN.Load()), int(sentN.Load()) }
}

// pause waits d and reports true, or false as soon as stop is closed.
func pause(stop <-chan struct{}, d time.Duration) bool {
	select {
	case <-stop:
		return false
	case <-time.After(d):
		return true
	}
}
