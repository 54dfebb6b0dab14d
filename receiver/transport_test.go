package receiver

import (
	"encoding/binary"

	"golang.org/x/net/http2"
)

// What the receiver's tests need to write raw HTTP/2 (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameSettings     = 0x4
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagAck        = 0x1
	flagEndStream  = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
)

var http2Preface = []byte(http2.ClientPreface)

func frame(typ, flags byte, stream uint32, payload []byte) []byte {
	b := []byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload)), typ, flags, 0, 0, 0, 0}
	binary.BigEndian.PutUint32(b[5:], stream)
	return append(b, payload...)
}

// What the fast paths did (traceport_fastpath_requests_total).
func h1Served(rc *Receiver) int64 { s, _, _, _ := rc.transport.FastPathCounts(); return s }

func h2Served(rc *Receiver) int64 { _, _, s, _ := rc.transport.FastPathCounts(); return s }

func h2HandedOff(rc *Receiver) int64 { _, _, _, h := rc.transport.FastPathCounts(); return h }
