package translate

import (
	"encoding/binary"
	"math"
	"math/bits"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// A hand-written scanner instead of encoding/json: decoding Envoy's Zipkin
// JSON with reflection into zipkin-go's model costs ~10× more per span than
// this (BenchmarkZipkinV2JSONViaZipkinGo), and speed is traceport's point.

// maxJSONDepth bounds nesting of skipped values so a hostile body cannot
// exhaust the stack.
const maxJSONDepth = 64

type jsonScanner struct {
	b   []byte
	p   int
	d   *zDecoder
	err string // first syntax problem; the body is malformed
	at  int    // offset of err
}

func (s *jsonScanner) fail(msg string) bool {
	if s.err == "" {
		s.err, s.at = msg, s.p
	}
	return false
}

// ws skips whitespace. Envoy writes compact JSON, so the usual case is a
// token right here: that check is small enough to inline at every call.
func (s *jsonScanner) ws() {
	if s.p < len(s.b) && s.b[s.p] > ' ' {
		return
	}
	s.skipWS()
}

func (s *jsonScanner) skipWS() {
	for s.p < len(s.b) {
		switch s.b[s.p] {
		case ' ', '\n', '\r', '\t':
			s.p++
		default:
			return
		}
	}
}

// peek skips whitespace and returns the next byte, 0 at the end.
func (s *jsonScanner) peek() byte {
	s.ws()
	if s.p >= len(s.b) {
		return 0
	}
	return s.b[s.p]
}

func (s *jsonScanner) consume(c byte) bool {
	if s.peek() != c {
		if s.p >= len(s.b) {
			return s.fail("unexpected end of body, want '" + string(c) + "'")
		}
		return s.fail("want '" + string(c) + "', got " + quoteByte(s.b[s.p]))
	}
	s.p++
	return true
}

func quoteByte(c byte) string {
	if c >= 0x20 && c < 0x7f {
		return "'" + string(c) + "'"
	}
	return "byte 0x" + strconv.FormatUint(uint64(c), 16)
}

// strSafe marks bytes that can be copied as they are inside a JSON string.
var strSafe = func() (t [256]bool) {
	for c := 0x20; c < 0x80; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a JSON string at the current position. The result is valid
// UTF-8 and either aliases the body or the decoder's scratch buffer, so it
// is only good until the next call.
func (s *jsonScanner) str() ([]byte, bool) {
	v, _, ok := s.strText()
	return v, ok
}

// keep stores a string strText returned (at being its offset in the body
// or -1) until the output is written: a reference into the body when
// possible, else a copy in the arena.
func (s *jsonScanner) keep(v []byte, at int) strRef {
	if at >= 0 {
		return s.d.bodyRef(at, len(v))
	}
	return s.d.addValid(v)
}

// strRef reads a JSON string and keeps it (see keep).
func (s *jsonScanner) strRef() (strRef, bool) {
	v, at, ok := s.strText()
	if !ok {
		return strRef{}, false
	}
	return s.keep(v, at), true
}

// strText is str that also tells where v is in the body when it is a slice
// of it (the string had no escapes and was valid UTF-8; at is -1 when v is
// a copy), so the caller can keep a reference instead of a copy (keep).
func (s *jsonScanner) strText() (v []byte, at int, ok bool) {
	if s.peek() != '"' {
		if s.p >= len(s.b) {
			return nil, -1, s.fail("unexpected end of body, want string")
		}
		return nil, -1, s.fail("want string, got " + quoteByte(s.b[s.p]))
	}
	start := s.p + 1
	if end := plainRun(s.b, start); end < len(s.b) && s.b[end] == '"' {
		s.p = end + 1
		return s.b[start:end], start, true
	}
	return s.strSlow(start)
}

// plainRun returns the end of the run of bytes from p on that a JSON string
// can hold as they are: the index of the first '"', '\\', control byte or
// non-ASCII byte, or len(b). It is small enough to inline.
func plainRun(b []byte, p int) int {
	for ; p+8 <= len(b); p += 8 { // 8 bytes at a time
		const ones, highs = 0x0101010101010101, 0x8080808080808080
		w := binary.LittleEndian.Uint64(b[p:])
		// A byte's high bit ends up set in m if the byte is >= 0x80 (w),
		// '\\' (bs-1 borrows), or < 0x20 or '"': y, which is w with
		// bit 1 flipped, maps those to 0x00..0x20, which y-0x21 borrows
		// from. A borrow only marks bytes after the one it comes from,
		// so the lowest marked byte is exact.
		y, bs := w^(ones*0x02), w^(ones*'\\')
		if m := ((y - ones*0x21) | (bs - ones) | w) & highs; m != 0 {
			return p + bits.TrailingZeros64(m)/8
		}
	}
	return plainTail(b, p)
}

// plainTail is plainRun byte by byte, for the last bytes of the body.
func plainTail(b []byte, p int) int {
	for p < len(b) && strSafe[b[p]] {
		p++
	}
	return p
}

// strSlow is strText for a string with escapes, non-ASCII or control
// characters, whose text starts at b[start]. One loop over the bytes, with
// each escape's case inline: it runs per character of such strings.
func (s *jsonScanner) strSlow(start int) (v []byte, at int, ok bool) {
	b := s.b
	p := start
	for {
		p = plainRun(b, p)
		if p >= len(b) {
			s.p = p
			return nil, -1, s.fail("unterminated string")
		}
		c := b[p]
		if c == '"' {
			s.p = p + 1
			return b[start:p], start, true
		}
		if c >= utf8.RuneSelf {
			r, n := utf8.DecodeRune(b[p:])
			if r != utf8.RuneError || n > 1 {
				p += n
				continue
			}
		} else if c < 0x20 {
			p++ // raw control characters: tolerated, they are valid UTF-8
			continue
		}
		break // escape or invalid UTF-8
	}
	out := append(s.d.scratch[:0], b[start:p]...)
	for {
		if p >= len(b) {
			s.p = p
			return nil, -1, s.fail("unterminated string")
		}
		c := b[p]
		switch {
		case c == '"':
			s.p = p + 1
			s.d.scratch = out
			return out, -1, true
		case c == '\\':
			if p+1 >= len(b) {
				s.p = p
				return nil, -1, s.fail("unterminated string")
			}
			e := b[p+1]
			p += 2
			switch e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(b, p)
				if !ok {
					s.p = p
					return nil, -1, s.fail("invalid \\u escape")
				}
				p += 4
				if utf16.IsSurrogate(r) {
					r2 := rune(-1)
					if p+6 <= len(b) && b[p] == '\\' && b[p+1] == 'u' {
						r2, ok = hex4(b, p+2)
						if !ok {
							s.p = p
							return nil, -1, s.fail("invalid \\u escape")
						}
					}
					if d := utf16.DecodeRune(r, r2); d != utf8.RuneError {
						r = d
						p += 6
					} else {
						r = utf8.RuneError // lone surrogate
					}
				}
				out = utf8.AppendRune(out, r)
			default:
				s.p = p - 1
				return nil, -1, s.fail("invalid escape " + quoteByte(e))
			}
		case c < utf8.RuneSelf:
			out = append(out, c)
			p++
		default:
			r, n := utf8.DecodeRune(b[p:])
			if r == utf8.RuneError && n <= 1 {
				out = append(out, "\uFFFD"...)
			} else {
				out = append(out, b[p:p+n]...)
			}
			p += n
		}
	}
}

func hex4(b []byte, p int) (rune, bool) {
	if p+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[p : p+4] {
		v := unhex[c]
		if v > 15 {
			return 0, false
		}
		r = r<<4 | rune(v)
	}
	return r, true
}

// literal consumes true, false or null.
func (s *jsonScanner) literal(word string) bool {
	if len(s.b)-s.p >= len(word) && string(s.b[s.p:s.p+len(word)]) == word {
		s.p += len(word)
		return true
	}
	return s.fail("invalid literal")
}

// numberToken returns the bytes of a JSON number at the current position.
func (s *jsonScanner) numberToken() ([]byte, bool) {
	start := s.p
	p := s.p
	if p < len(s.b) && s.b[p] == '-' {
		p++
	}
	digits := 0
	for p < len(s.b) {
		c := s.b[p]
		if c >= '0' && c <= '9' {
			digits++
		} else if c != '.' && c != 'e' && c != 'E' && c != '+' && c != '-' {
			break
		}
		p++
	}
	if digits == 0 {
		return nil, s.fail("invalid number")
	}
	s.p = p
	return s.b[start:p], true
}

// skip consumes any JSON value, refusing to nest deeper than maxJSONDepth.
func (s *jsonScanner) skip(depth int) bool {
	if depth > maxJSONDepth {
		return s.fail("nested deeper than " + strconv.Itoa(maxJSONDepth))
	}
	switch c := s.peek(); c {
	case '"':
		_, ok := s.str()
		return ok
	case '{':
		s.p++
		if s.peek() == '}' {
			s.p++
			return true
		}
		for {
			if _, ok := s.str(); !ok || !s.consume(':') || !s.skip(depth+1) {
				return false
			}
			switch s.peek() {
			case ',':
				s.p++
			case '}':
				s.p++
				return true
			default:
				return s.fail("want ',' or '}' in object")
			}
		}
	case '[':
		s.p++
		if s.peek() == ']' {
			s.p++
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			switch s.peek() {
			case ',':
				s.p++
			case ']':
				s.p++
				return true
			default:
				return s.fail("want ',' or ']' in array")
			}
		}
	case 't':
		return s.literal("true")
	case 'f':
		return s.literal("false")
	case 'n':
		return s.literal("null")
	case 0:
		return s.fail("unexpected end of body")
	default:
		if c == '-' || (c >= '0' && c <= '9') {
			_, ok := s.numberToken()
			return ok
		}
		return s.fail("unexpected " + quoteByte(c))
	}
}

// object walks the members of a JSON object, calling member with the
// scanner positioned at each value; member must consume the value. The hot
// v2 decoders loop with openObject, key and nextMember themselves instead,
// which saves a closure call per member.
func (s *jsonScanner) object(member func(key []byte) bool) bool {
	more, ok := s.openObject()
	for ; more; more, ok = s.nextMember() {
		key, _, keyOK := s.key()
		if !keyOK || !member(key) {
			return false
		}
	}
	return ok
}

// openObject consumes the '{' of an object; more tells whether a member
// follows.
func (s *jsonScanner) openObject() (more, ok bool) {
	if !s.consume('{') {
		return false, false
	}
	if s.peek() == '}' {
		s.p++
		return false, true
	}
	return true, true
}

// key reads a member's key and the ':' after it, leaving the scanner on the
// value; at is as for strText.
func (s *jsonScanner) key() (key []byte, at int, ok bool) {
	// Fast path for a plain key right here with the ':' right after it.
	if b, p := s.b, s.p; p < len(b) && b[p] == '"' {
		if end := plainRun(b, p+1); end+1 < len(b) && b[end] == '"' && b[end+1] == ':' {
			s.p = end + 2
			s.ws()
			return b[p+1 : end], p + 1, true
		}
	}
	key, at, ok = s.strText()
	if !ok || !s.consume(':') {
		return nil, -1, false
	}
	s.ws()
	return key, at, true
}

// nextMember consumes the ',' or '}' after a member's value; more tells
// whether another member follows.
func (s *jsonScanner) nextMember() (more, ok bool) {
	if s.p < len(s.b) && s.b[s.p] == ',' { // the usual case
		s.p++
		return true, true
	}
	return s.endMember()
}

// endMember is nextMember past its fast path.
func (s *jsonScanner) endMember() (more, ok bool) {
	switch s.peek() {
	case ',':
		s.p++
		return true, true
	case '}':
		s.p++
		return false, true
	}
	if s.p >= len(s.b) {
		return false, s.fail("unexpected end of body in object")
	}
	return false, s.fail("want ',' or '}' in object, got " + quoteByte(s.b[s.p]))
}

// array walks the elements of a JSON array.
func (s *jsonScanner) array(elem func(i int) bool) bool {
	if !s.consume('[') {
		return false
	}
	if s.peek() == ']' {
		s.p++
		return true
	}
	for i := 0; ; i++ {
		s.ws()
		if !elem(i) {
			return false
		}
		switch s.peek() {
		case ',':
			s.p++
		case ']':
			s.p++
			return true
		default:
			if s.p >= len(s.b) {
				return s.fail("unexpected end of body in array")
			}
			return s.fail("want ',' or ']' in array, got " + quoteByte(s.b[s.p]))
		}
	}
}

// micros reads a Zipkin epoch-microsecond or duration value: a JSON
// integer, a float (old Envoys wrote 1.58266276796031e+15), a quoted number
// or null. present is false for null; problem is set for a value that is
// well-formed JSON but no number.
func (s *jsonScanner) micros() (v int64, present bool, problem string, ok bool) {
	var tok []byte
	switch c := s.peek(); {
	case c == 'n':
		return 0, false, "", s.literal("null")
	case c == '"':
		if tok, ok = s.str(); !ok {
			return 0, false, "", false
		}
		if len(tok) == 0 {
			return 0, false, "", true
		}
	case c == '-' || (c >= '0' && c <= '9'):
		if v, ok := s.plainInt(); ok {
			return v, true, "", true
		}
		if tok, ok = s.numberToken(); !ok {
			return 0, false, "", false
		}
	default:
		return 0, false, "not a number", s.skip(1)
	}
	v, problem = parseMicros(tok)
	return v, problem == "", problem, true
}

// plainInt reads the usual number, up to 18 digits with nothing else, in
// one pass; for any other it reads nothing and returns false.
func (s *jsonScanner) plainInt() (int64, bool) {
	var v int64
	p := s.p
	for ; p < len(s.b) && p-s.p < 18; p++ {
		c := s.b[p]
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int64(c-'0')
	}
	if p == s.p || p >= len(s.b) || p-s.p == 18 {
		return 0, false
	}
	switch s.b[p] {
	case '.', 'e', 'E', '+', '-':
		return 0, false
	}
	s.p = p
	return v, true
}

func parseMicros(tok []byte) (int64, string) {
	if len(tok) > 0 && len(tok) <= 18 {
		var v int64
		i := 0
		neg := tok[0] == '-'
		if neg {
			i = 1
		}
		for ; i < len(tok); i++ {
			c := tok[i]
			if c < '0' || c > '9' {
				break
			}
			v = v*10 + int64(c-'0')
		}
		if i == len(tok) && len(tok) > 0 && !(neg && len(tok) == 1) {
			if neg {
				v = -v
			}
			return v, ""
		}
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil || math.IsNaN(f) {
		return 0, "not a number: " + strconv.Quote(truncate(tok, 32))
	}
	if math.Abs(f) >= 9e18 {
		return 0, "number out of range"
	}
	return int64(math.Round(f)), ""
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
