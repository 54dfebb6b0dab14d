package h2test

import (
	"bytes"
	"io"
	"slices"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// x/net reads the bomb as one header block in frames of 16 KiB at most,
// and decodes it to the headers and then the 4 KB field again and again.
func TestHPACKBombAsXNetReadsIt(t *testing.T) {
	headers := []hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":path", Value: "/x"}}
	const size = 16384 + 100
	bomb := HPACKBomb(5, headers, "x-bomb", size)
	fr := http2.NewFramer(nil, bytes.NewReader(bomb))
	var block []byte
	var types []http2.FrameType
	for {
		f, err := fr.ReadFrame()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if f.Header().StreamID != 5 || f.Header().Length > 16384 {
			t.Fatalf("frame %v", f.Header())
		}
		types = append(types, f.Header().Type)
		switch f := f.(type) {
		case *http2.HeadersFrame:
			block = append(block, f.HeaderBlockFragment()...)
		case *http2.ContinuationFrame:
			block = append(block, f.HeaderBlockFragment()...)
		}
	}
	want := []http2.FrameType{http2.FrameHeaders, http2.FrameContinuation}
	if !slices.Equal(types, want) || len(block) != size {
		t.Fatalf("frames %v, block %d bytes; want %v, %d bytes", types, len(block), want, size)
	}
	var fields []hpack.HeaderField
	bombs := 0
	dec := hpack.NewDecoder(4096, func(f hpack.HeaderField) {
		if f.Name == "x-bomb" && len(f.Value) == 4000 {
			bombs++
		} else {
			fields = append(fields, f)
		}
	})
	if _, err := dec.Write(block); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(fields, headers) || bombs < size-4100 {
		t.Fatalf("decoded %v and %d times the 4 KB field", fields, bombs)
	}
}
