package translate

import (
	"strconv"

	"google.golang.org/protobuf/encoding/protowire"
)

// otlpMaxDepth mirrors pdata v1.71.0's proto.RecursionLimit, counted the
// same way (each KeyValue, AnyValue, ArrayValue and KeyValueList level is one),
// so that ScanOTLP refuses exactly the nesting the Collector refuses.
const otlpMaxDepth = 100

const otlpServiceNameKey = "service.name"

// ScanOTLP validates a serialized ExportTraceServiceRequest (OTLP/gRPC or
// OTLP/HTTP protobuf body) without decoding it into structs, and appends to
// counts one entry per service (resource attribute service.name, else
// FallbackServiceName) with the number of spans it carries; entries already
// in counts are left alone. On error counts is returned as passed in.
//
// It accepts exactly what pdata v1.71.0 (the OpenTelemetry Collector and
// Jaeger v2 receivers) accepts, so one malformed request can never poison a
// merged export batch: same wire types per known field, trace ids of 0 or 16
// bytes, span ids of 0 or 8, same AnyValue nesting limit, unknown fields
// skipped, no UTF-8 check on strings. It is deliberately stricter only where
// no real encoder goes: group wire types, field numbers above 2^29-1 and
// 10-byte varints that overflow 64 bits are refused (pdata skips or
// truncates them).
//
// Counting follows pdata's view of the request: a ResourceSpans with any
// scope_spans ignores its deprecated instrumentation_library_spans (field
// 1000), and service.name is the first attribute with that key, used only if
// its value is a non-empty string.
//
// Service names are copied out of data (which may be a pooled buffer); a name
// equal to the one left in the next unused slot of counts is reused from
// there, so a pooled counts slice makes steady-state scans allocation free.
func ScanOTLP(data []byte, counts []ServiceCount) ([]ServiceCount, error) {
	return ScanOTLPVisit(data, counts, nil)
}

// ScanOTLPVisit is ScanOTLP that also shows v (if not nil) each resource
// and each span as it walks them, so that whoever watches spans shares the
// one pass the receiver makes anyway. v sees a request's spans before the
// verdict: it must keep what it saw aside until the caller knows the
// request is accepted. Only spans under scope_spans are shown.
func ScanOTLPVisit(data []byte, counts []ServiceCount, v OTLPVisitor) ([]ServiceCount, error) {
	n0 := len(counts)
	rsIdx := 0
	for pos := 0; pos < len(data); {
		f, next, err := otlpNextField(data, pos, 0)
		if err != nil {
			return counts[:n0], err
		}
		pos = next
		if f.num != 1 {
			continue
		}
		if err := f.want(protowire.BytesType); err != nil {
			return counts[:n0], err.under("resource_spans", rsIdx)
		}
		rs := otlpResourceScan{visitor: v}
		if err := rs.scan(data[f.start:f.end], f.start); err != nil {
			return counts[:n0], err.under("resource_spans", rsIdx)
		}
		rsIdx++
		if n := rs.spans(); n > 0 {
			counts = otlpAddCount(counts, n0, rs.service, n)
		}
	}
	return counts, nil
}

// otlpAddCount adds n spans of service (bytes of the request; empty means
// FallbackServiceName) to the entries counts[n0:].
func otlpAddCount(counts []ServiceCount, n0 int, service []byte, n int) []ServiceCount {
	for i := n0; i < len(counts); i++ {
		if otlpSameService(counts[i].Service, service) {
			counts[i].Spans += n
			return counts
		}
	}
	if len(counts) < cap(counts) {
		if spare := counts[:len(counts)+1][len(counts)]; otlpSameService(spare.Service, service) {
			return append(counts, ServiceCount{Service: spare.Service, Spans: n})
		}
	}
	name := FallbackServiceName
	if len(service) > 0 {
		name = string(service)
	}
	return append(counts, ServiceCount{Service: name, Spans: n})
}

func otlpSameService(name string, service []byte) bool {
	if len(service) == 0 {
		return name == FallbackServiceName
	}
	return name == string(service)
}

// otlpResourceScan is what one ResourceSpans tells the counter.
type otlpResourceScan struct {
	service      []byte // value of the first service.name attribute, if a string
	serviceFound bool   // a service.name attribute was seen (later ones are ignored)
	scopeSpans   int    // spans under scope_spans (field 2)
	hasScope     bool   // scope_spans present, even empty: field 1000 is then ignored
	legacySpans  int    // spans under instrumentation_library_spans (field 1000)

	visitor          OTLPVisitor
	k8sNS, serviceNS []byte // last k8s.namespace.name / service.namespace string, for the visitor
}

func (rs *otlpResourceScan) spans() int {
	if rs.hasScope {
		return rs.scopeSpans
	}
	return rs.legacySpans
}

func (rs *otlpResourceScan) scan(b []byte, base int) *otlpError {
	// The resource first, wherever it is (pdata writes it last), so that
	// the visitor knows the service before the spans. This pass reads only
	// the few field headers of the ResourceSpans.
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		if f.num != 1 {
			continue
		}
		if err := f.want(protowire.BytesType); err != nil {
			return err.under("resource", -1)
		}
		if err := rs.scanResourceMsg(b[f.start-base:f.end-base], f.start); err != nil {
			return err.under("resource", -1)
		}
	}
	var spanVisitor OTLPVisitor
	if rs.visitor != nil {
		ns := rs.k8sNS
		if len(ns) == 0 {
			ns = rs.serviceNS
		}
		rs.visitor.OTLPResource(rs.service, ns)
		spanVisitor = rs.visitor
	}
	ssIdx, legacyIdx := 0, 0
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		switch f.num {
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("scope_spans", ssIdx)
			}
			n, err := otlpScanScopeSpans(b[f.start-base:f.end-base], f.start, spanVisitor)
			if err != nil {
				return err.under("scope_spans", ssIdx)
			}
			rs.scopeSpans += n
			rs.hasScope = true
			ssIdx++
		case 3:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("schema_url", -1)
			}
		case 1000:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("instrumentation_library_spans", legacyIdx)
			}
			n, err := otlpScanScopeSpans(b[f.start-base:f.end-base], f.start, nil)
			if err != nil {
				return err.under("instrumentation_library_spans", legacyIdx)
			}
			rs.legacySpans += n
			legacyIdx++
		}
	}
	return nil
}

func (rs *otlpResourceScan) scanResourceMsg(b []byte, base int) *otlpError {
	attrIdx, refIdx := 0, 0
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		switch f.num {
		case 1:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("attributes", attrIdx)
			}
			kv, err := otlpScanKeyValue(b[f.start-base:f.end-base], f.start, 0)
			if err != nil {
				return err.under("attributes", attrIdx)
			}
			var str []byte
			if kv.valueKind == otlpAnyString {
				str = kv.str
			}
			switch string(kv.key) {
			case otlpServiceNameKey:
				if !rs.serviceFound {
					rs.serviceFound, rs.service = true, str
				}
			case "k8s.namespace.name":
				rs.k8sNS = str
			case "service.namespace":
				rs.serviceNS = str
			}
			attrIdx++
		case 2:
			if err := f.want(protowire.VarintType); err != nil {
				return err.under("dropped_attributes_count", -1)
			}
		case 3:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("entity_refs", refIdx)
			}
			if err := otlpScanEntityRef(b[f.start-base:f.end-base], f.start); err != nil {
				return err.under("entity_refs", refIdx)
			}
			refIdx++
		}
	}
	return nil
}

func otlpScanEntityRef(b []byte, base int) *otlpError {
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		if f.num >= 1 && f.num <= 4 { // schema_url, type, id_keys, description_keys
			if err := f.want(protowire.BytesType); err != nil {
				return err.under(otlpEntityRefFields[f.num-1], -1)
			}
		}
	}
	return nil
}

var otlpEntityRefFields = [...]string{"schema_url", "type", "id_keys", "description_keys"}

func otlpScanScopeSpans(b []byte, base int, v OTLPVisitor) (int, *otlpError) {
	spanIdx := 0
	var span OTLPSpan
	note := &span
	if v == nil {
		note = nil // nothing to show: the span walk notes nothing either
	}
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return 0, err
		}
		pos = next
		switch f.num {
		case 1:
			if err := f.want(protowire.BytesType); err != nil {
				return 0, err.under("scope", -1)
			}
			if err := otlpScanScope(b[f.start-base:f.end-base], f.start); err != nil {
				return 0, err.under("scope", -1)
			}
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return 0, err.under("spans", spanIdx)
			}
			if err := otlpScanSpan(b[f.start-base:f.end-base], f.start, note); err != nil {
				return 0, err.under("spans", spanIdx)
			}
			if v != nil {
				v.OTLPSpan(span)
			}
			spanIdx++
		case 3:
			if err := f.want(protowire.BytesType); err != nil {
				return 0, err.under("schema_url", -1)
			}
		}
	}
	return spanIdx, nil
}

func otlpScanScope(b []byte, base int) *otlpError {
	attrIdx := 0
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		switch f.num {
		case 1, 2:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under([...]string{"name", "version"}[f.num-1], -1)
			}
		case 3:
			if err := otlpScanAttribute(b, base, f, attrIdx); err != nil {
				return err
			}
			attrIdx++
		case 4:
			if err := f.want(protowire.VarintType); err != nil {
				return err.under("dropped_attributes_count", -1)
			}
		}
	}
	return nil
}

// otlpSpanFields names Span's fields for error paths, and gives their wire type.
var otlpSpanFields = [17]struct {
	name string
	typ  protowire.Type
}{
	1: {"trace_id", protowire.BytesType}, 2: {"span_id", protowire.BytesType},
	3: {"trace_state", protowire.BytesType}, 4: {"parent_span_id", protowire.BytesType},
	5: {"name", protowire.BytesType}, 6: {"kind", protowire.VarintType},
	7: {"start_time_unix_nano", protowire.Fixed64Type}, 8: {"end_time_unix_nano", protowire.Fixed64Type},
	9: {"attributes", protowire.BytesType}, 10: {"dropped_attributes_count", protowire.VarintType},
	11: {"events", protowire.BytesType}, 12: {"dropped_events_count", protowire.VarintType},
	13: {"links", protowire.BytesType}, 14: {"dropped_links_count", protowire.VarintType},
	15: {"status", protowire.BytesType}, 16: {"flags", protowire.Fixed32Type},
}

// otlpSpanWire is the wire type of each known Span field (0 = unknown
// number, skipped), for otlpSpanFast.
var otlpSpanWire = [17]int8{0, 2, 2, 2, 2, 2, 0, 1, 1, 2, 0, 2, 0, 2, 0, 2, 5}

// otlpSpanFast accepts the spans encoders actually write (one-byte tags,
// lengths under 16 KiB, plain attributes) in one tight loop with no calls
// for most fields, and notes in s (if not nil) the fields a visitor is
// shown. false means "not sure": otlpScanSpan's general walk then gives the
// verdict and the error message.
//
// Noting costs the loop: stores per field, and registers it needs for
// itself. So the attributes' extent is kept in locals and stored once, and
// with no visitor (s nil) nothing is stored at all, which keeps the walk
// without a visitor as fast as validation alone.
func otlpSpanFast(b []byte, s *OTLPSpan) bool {
	if s != nil {
		*s = OTLPSpan{Raw: b}
	}
	i, attrLo, attrHi := 0, -1, 0
	for i < len(b) {
		tag := b[i]
		if tag == 0x85 && i+6 <= len(b) && b[i+1] == 0x01 {
			i += 6 // flags (16, fixed32): the one field with a two-byte tag
			continue
		}
		if tag >= 0x80 || tag < 8 {
			return false
		}
		i++
		num, typ := tag>>3, int8(tag&7)
		if num <= 16 && typ != otlpSpanWire[num] && !(typ == 0 && (num == 6 || num == 10 || num == 12 || num == 14)) {
			return false
		}
		switch typ {
		case 2:
			if i >= len(b) {
				return false
			}
			at := i - 1
			l := int(b[i])
			i++
			if l >= 0x80 {
				if i >= len(b) || b[i] >= 0x80 {
					return false
				}
				l = l&0x7f | int(b[i])<<7
				i++
			}
			if l > len(b)-i {
				return false
			}
			switch num {
			case 1:
				if l != 16 && l != 0 {
					return false
				}
				if s != nil {
					s.TraceID = b[i : i+l]
				}
			case 2, 4:
				if l != 8 && l != 0 {
					return false
				}
				if s != nil && num == 2 {
					s.SpanID = b[i : i+l]
				} else if s != nil {
					s.ParentSpanID = b[i : i+l]
				}
			case 9:
				if !otlpPlainKV(b[i : i+l]) {
					return false
				}
				if attrLo < 0 {
					attrLo = at
				}
				attrHi = i + l
			case 11:
				if otlpScanEvent(b[i:i+l], 0) != nil {
					return false
				}
			case 13:
				if otlpScanLink(b[i:i+l], 0) != nil {
					return false
				}
			case 15:
				if otlpScanStatus(b[i:i+l], 0) != nil {
					return false
				}
			}
			i += l
		case 0:
			if num == 6 && s != nil {
				s.Kind, _ = protowire.ConsumeVarint(b[i:]) // checked below
			}
			for j := 0; ; j++ {
				if i >= len(b) || j == 9 {
					return false
				}
				i++
				if b[i-1] < 0x80 {
					break
				}
			}
		case 1:
			i += 8
		case 5:
			i += 4
		default:
			return false
		}
	}
	if attrLo >= 0 && s != nil {
		s.Attributes = b[attrLo:attrHi]
	}
	return i == len(b) // a fixed64/fixed32 cut short overshoots
}

// otlpScanSpan is the hot loop: about 25 fields per SDK-shaped span. It
// notes in s (if not nil) what a visitor is shown of the span.
func otlpScanSpan(b []byte, base int, s *OTLPSpan) *otlpError {
	if otlpSpanFast(b, s) {
		return nil
	}
	var discard OTLPSpan
	if s == nil {
		s = &discard
	}
	*s = OTLPSpan{Raw: b}
	attrIdx, eventIdx, linkIdx, attrLo := 0, 0, 0, 0
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		if f.num > 16 {
			continue
		}
		if f.typ != otlpSpanFields[f.num].typ {
			return f.want(otlpSpanFields[f.num].typ).under(otlpSpanFields[f.num].name, -1)
		}
		switch f.num {
		case 1:
			if err := f.wantLen(16); err != nil {
				return err.under("trace_id", -1)
			}
			s.TraceID = b[f.start-base : f.end-base]
		case 2, 4:
			if err := f.wantLen(8); err != nil {
				return err.under(otlpSpanFields[f.num].name, -1)
			}
			if f.num == 2 {
				s.SpanID = b[f.start-base : f.end-base]
			} else {
				s.ParentSpanID = b[f.start-base : f.end-base]
			}
		case 6:
			_, tagLen := protowire.ConsumeVarint(b[f.tagOff-base:]) // read by otlpNextField
			s.Kind, _ = protowire.ConsumeVarint(b[f.tagOff-base+tagLen:])
		case 9:
			if err := otlpScanAttribute(b, base, f, attrIdx); err != nil {
				return err
			}
			if attrIdx == 0 {
				attrLo = f.tagOff - base
			}
			s.Attributes = b[attrLo : f.end-base]
			attrIdx++
		case 11:
			if err := otlpScanEvent(b[f.start-base:f.end-base], f.start); err != nil {
				return err.under("events", eventIdx)
			}
			eventIdx++
		case 13:
			if err := otlpScanLink(b[f.start-base:f.end-base], f.start); err != nil {
				return err.under("links", linkIdx)
			}
			linkIdx++
		case 15:
			if err := otlpScanStatus(b[f.start-base:f.end-base], f.start); err != nil {
				return err.under("status", -1)
			}
		}
	}
	return nil
}

// otlpScanAttribute checks one attributes entry (a KeyValue field f of the
// message b starting at base).
func otlpScanAttribute(b []byte, base int, f otlpField, idx int) *otlpError {
	if err := f.want(protowire.BytesType); err != nil {
		return err.under("attributes", idx)
	}
	if otlpPlainKV(b[f.start-base : f.end-base]) {
		return nil
	}
	if _, err := otlpScanKeyValue(b[f.start-base:f.end-base], f.start, 0); err != nil {
		return err.under("attributes", idx)
	}
	return nil
}

func otlpScanEvent(b []byte, base int) *otlpError {
	attrIdx := 0
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		switch f.num {
		case 1:
			if err := f.want(protowire.Fixed64Type); err != nil {
				return err.under("time_unix_nano", -1)
			}
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("name", -1)
			}
		case 3:
			if err := otlpScanAttribute(b, base, f, attrIdx); err != nil {
				return err
			}
			attrIdx++
		case 4:
			if err := f.want(protowire.VarintType); err != nil {
				return err.under("dropped_attributes_count", -1)
			}
		}
	}
	return nil
}

func otlpScanLink(b []byte, base int) *otlpError {
	attrIdx := 0
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		switch f.num {
		case 1:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("trace_id", -1)
			}
			if err := f.wantLen(16); err != nil {
				return err.under("trace_id", -1)
			}
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("span_id", -1)
			}
			if err := f.wantLen(8); err != nil {
				return err.under("span_id", -1)
			}
		case 3:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("trace_state", -1)
			}
		case 4:
			if err := otlpScanAttribute(b, base, f, attrIdx); err != nil {
				return err
			}
			attrIdx++
		case 5:
			if err := f.want(protowire.VarintType); err != nil {
				return err.under("dropped_attributes_count", -1)
			}
		case 6:
			if err := f.want(protowire.Fixed32Type); err != nil {
				return err.under("flags", -1)
			}
		}
	}
	return nil
}

func otlpScanStatus(b []byte, base int) *otlpError {
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		switch f.num {
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return err.under("message", -1)
			}
		case 3:
			if err := f.want(protowire.VarintType); err != nil {
				return err.under("code", -1)
			}
		}
	}
	return nil
}

// AnyValue oneof field numbers; otlpAnyNone means no value field was seen.
const (
	otlpAnyNone   = 0
	otlpAnyString = 1
)

// otlpKeyValue is what the counter needs of a KeyValue: pdata keeps the last key
// and, across repeated value fields, the last oneof member set.
type otlpKeyValue struct {
	key       []byte
	valueKind protowire.Number
	str       []byte
}

func otlpScanKeyValue(b []byte, base, depth int) (otlpKeyValue, *otlpError) {
	var kv otlpKeyValue
	if depth >= otlpMaxDepth {
		return kv, otlpErrAt(base, "nesting deeper than "+strconv.Itoa(otlpMaxDepth))
	}
	depth++
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return kv, err
		}
		pos = next
		switch f.num {
		case 1:
			if err := f.want(protowire.BytesType); err != nil {
				return kv, err.under("key", -1)
			}
			kv.key = b[f.start-base : f.end-base]
		case 2:
			if err := f.want(protowire.BytesType); err != nil {
				return kv, err.under("value", -1)
			}
			kind, str, err := otlpScanAnyValue(b[f.start-base:f.end-base], f.start, depth)
			if err != nil {
				return kv, err.under("value", -1)
			}
			if kind != otlpAnyNone {
				kv.valueKind, kv.str = kind, str
			}
		case 3:
			if err := f.want(protowire.VarintType); err != nil {
				return kv, err.under("key_strindex", -1)
			}
		}
	}
	return kv, nil
}

var otlpAnyValueFields = [9]struct {
	name string
	typ  protowire.Type
}{
	1: {"string_value", protowire.BytesType}, 2: {"bool_value", protowire.VarintType},
	3: {"int_value", protowire.VarintType}, 4: {"double_value", protowire.Fixed64Type},
	5: {"array_value", protowire.BytesType}, 6: {"kvlist_value", protowire.BytesType},
	7: {"bytes_value", protowire.BytesType}, 8: {"string_value_strindex", protowire.VarintType},
}

// otlpScanAnyValue returns the last oneof member set and, if a string, its bytes.
func otlpScanAnyValue(b []byte, base, depth int) (protowire.Number, []byte, *otlpError) {
	if depth >= otlpMaxDepth {
		return 0, nil, otlpErrAt(base, "nesting deeper than "+strconv.Itoa(otlpMaxDepth))
	}
	depth++
	kind, str := protowire.Number(otlpAnyNone), []byte(nil)
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return 0, nil, err
		}
		pos = next
		if f.num > 8 {
			continue
		}
		if f.typ != otlpAnyValueFields[f.num].typ {
			return 0, nil, f.want(otlpAnyValueFields[f.num].typ).under(otlpAnyValueFields[f.num].name, -1)
		}
		kind = f.num
		switch f.num {
		case 1:
			str = b[f.start-base : f.end-base]
		case 5:
			if err := otlpScanValues(b[f.start-base:f.end-base], f.start, depth, false); err != nil {
				return 0, nil, err.under("array_value", -1)
			}
		case 6:
			if err := otlpScanValues(b[f.start-base:f.end-base], f.start, depth, true); err != nil {
				return 0, nil, err.under("kvlist_value", -1)
			}
		}
	}
	return kind, str, nil
}

// otlpScanValues checks an ArrayValue (repeated AnyValue values = 1) or a
// KeyValueList (repeated KeyValue values = 1).
func otlpScanValues(b []byte, base, depth int, kvlist bool) *otlpError {
	if depth >= otlpMaxDepth {
		return otlpErrAt(base, "nesting deeper than "+strconv.Itoa(otlpMaxDepth))
	}
	depth++
	idx := 0
	for pos := 0; pos < len(b); {
		f, next, err := otlpNextField(b, pos, base)
		if err != nil {
			return err
		}
		pos = next
		if f.num != 1 {
			continue
		}
		if err := f.want(protowire.BytesType); err != nil {
			return err.under("values", idx)
		}
		if kvlist {
			_, err = otlpScanKeyValue(b[f.start-base:f.end-base], f.start, depth)
		} else {
			_, _, err = otlpScanAnyValue(b[f.start-base:f.end-base], f.start, depth)
		}
		if err != nil {
			return err.under("values", idx)
		}
		idx++
	}
	return nil
}

// field is one decoded field header. For length-delimited fields
// [start, end) is the payload, as offsets from the start of the request.
type otlpField struct {
	num        protowire.Number
	typ        protowire.Type
	start, end int
	tagOff     int
}

// want reports a field of a known number sent with the wrong wire type.
func (f otlpField) want(typ protowire.Type) *otlpError {
	if f.typ == typ {
		return nil
	}
	return otlpErrAt(f.tagOff, "wire type "+strconv.Itoa(int(f.typ))+", want "+strconv.Itoa(int(typ)))
}

// wantLen checks an id field: empty (unset) or exactly n bytes.
func (f otlpField) wantLen(n int) *otlpError {
	if l := f.end - f.start; l != 0 && l != n {
		return otlpErrAt(f.start, "length "+strconv.Itoa(l)+", want "+strconv.Itoa(n))
	}
	return nil
}

// otlpNextField reads the field at b[pos:] (b starts at offset base of the
// request) and skips over its value.
func otlpNextField(b []byte, pos, base int) (otlpField, int, *otlpError) {
	// Fast path: one-byte tag and one-byte length or value, no error to build.
	if pos+1 < len(b) && b[pos] < 0x80 && b[pos] >= 8 && b[pos+1] < 0x80 {
		tag, next := b[pos], b[pos+1]
		f := otlpField{num: protowire.Number(tag >> 3), typ: protowire.Type(tag & 7), tagOff: base + pos}
		switch f.typ {
		case protowire.BytesType:
			if int(next) <= len(b)-pos-2 {
				f.start = base + pos + 2
				f.end = f.start + int(next)
				return f, pos + 2 + int(next), nil
			}
		case protowire.VarintType:
			return f, pos + 2, nil
		}
	}
	return otlpNextFieldSlow(b, pos, base)
}

func otlpNextFieldSlow(b []byte, pos, base int) (otlpField, int, *otlpError) {
	f := otlpField{tagOff: base + pos}
	var v uint64
	if pos < len(b) && b[pos] < 0x80 {
		v = uint64(b[pos])
		pos++
	} else {
		var err *otlpError
		if v, pos, err = otlpVarintSlow(b, pos, base); err != nil {
			return f, 0, err
		}
	}
	f.num, f.typ = protowire.Number(v>>3), protowire.Type(v&7) // num checked before use
	switch {
	case v>>3 == 0:
		return f, 0, otlpErrAt(f.tagOff, "invalid field number 0")
	case v>>3 > uint64(protowire.MaxValidNumber):
		e := otlpErrAt(f.tagOff, "invalid field number "+strconv.FormatUint(v>>3, 10))
		e.stricter = int32(v>>3) > 0 // pdata truncates to int32 and goes on
		return f, 0, e
	}
	switch f.typ {
	case protowire.BytesType:
		var l uint64
		if pos < len(b) && b[pos] < 0x80 {
			l = uint64(b[pos])
			pos++
		} else {
			var err *otlpError
			if l, pos, err = otlpVarintSlow(b, pos, base); err != nil {
				return f, 0, err
			}
		}
		if l > uint64(len(b)-pos) {
			return f, 0, otlpErrAt(base+pos, "length "+strconv.FormatUint(l, 10)+" past end of message ("+strconv.Itoa(len(b)-pos)+" bytes left)")
		}
		f.start, f.end = base+pos, base+pos+int(l)
		return f, pos + int(l), nil
	case protowire.VarintType:
		if pos < len(b) && b[pos] < 0x80 {
			return f, pos + 1, nil
		}
		_, pos, err := otlpVarintSlow(b, pos, base)
		return f, pos, err
	case protowire.Fixed64Type:
		if len(b)-pos < 8 {
			return f, 0, otlpErrAt(base+pos, "truncated fixed64")
		}
		return f, pos + 8, nil
	case protowire.Fixed32Type:
		if len(b)-pos < 4 {
			return f, 0, otlpErrAt(base+pos, "truncated fixed32")
		}
		return f, pos + 4, nil
	case protowire.StartGroupType, protowire.EndGroupType:
		e := otlpErrAt(f.tagOff, "group wire type "+strconv.Itoa(int(f.typ))+" (field "+strconv.Itoa(int(f.num))+")")
		e.stricter = f.typ == protowire.StartGroupType // pdata skips well-formed unknown groups
		return f, 0, e
	}
	return f, 0, otlpErrAt(f.tagOff, "invalid wire type "+strconv.Itoa(int(f.typ)))
}

func otlpVarintSlow(b []byte, pos, base int) (uint64, int, *otlpError) {
	v, n := protowire.ConsumeVarint(b[pos:])
	if n >= 0 {
		return v, pos + n, nil
	}
	if len(b)-pos < 10 {
		return 0, 0, otlpErrAt(base+pos, "truncated varint")
	}
	e := otlpErrAt(base+pos, "varint overflows 64 bits")
	e.stricter = b[pos+9] < 0x80 // pdata drops the excess bits of a 10-byte varint
	return 0, 0, e
}

// otlpError is a malformed request: where, what, at which byte.
type otlpError struct {
	path     string // built from the leaf outwards as the error returns
	msg      string
	off      int
	stricter bool // refused although pdata v1.71.0 would accept it (see ScanOTLP)
}

func otlpErrAt(off int, msg string) *otlpError { return &otlpError{msg: msg, off: off} }

// under prefixes the path with a field name and, if idx >= 0, its index.
func (e *otlpError) under(name string, idx int) *otlpError {
	if idx >= 0 {
		name += "[" + strconv.Itoa(idx) + "]"
	}
	if e.path == "" {
		e.path = name
	} else {
		e.path = name + "." + e.path
	}
	return e
}

func (e *otlpError) Error() string {
	if e.path == "" {
		return "otlp: " + e.msg + " (offset " + strconv.Itoa(e.off) + ")"
	}
	return "otlp: " + e.path + ": " + e.msg + " (offset " + strconv.Itoa(e.off) + ")"
}

// otlpPlainKV reports whether p is a well-formed KeyValue in the shapes
// encoders write: a key and a value holding one string, bool, int or double,
// in either order (Go protobuf writes the key first, pdata the value first),
// with one-byte lengths. It spares the general path's calls for most
// attributes; anything else, including every malformed input, goes the
// general way.
func otlpPlainKV(p []byte) bool {
	for len(p) > 0 {
		if len(p) < 2 || p[1] >= 0x80 || int(p[1]) > len(p)-2 {
			return false
		}
		body := p[2 : 2+int(p[1])]
		switch p[0] {
		case 0x0a: // key
		case 0x12: // value: one simple AnyValue member
			if !otlpPlainAnyValue(body) {
				return false
			}
		default:
			return false
		}
		p = p[2+len(body):]
	}
	return true
}

func otlpPlainAnyValue(v []byte) bool {
	if len(v) < 2 {
		return false
	}
	switch v[0] {
	case 0x0a: // string_value
		return v[1] < 0x80 && 2+int(v[1]) == len(v)
	case 0x10, 0x18: // bool_value, int_value: a varint of at most 9 bytes
		for j := 1; j < len(v) && j < 10; j++ {
			if v[j] < 0x80 {
				return j+1 == len(v)
			}
		}
		return false
	case 0x21: // double_value
		return len(v) == 9
	}
	return false
}
