package receiver

import (
	"fmt"
	"testing"

	"github.com/traceport/traceport/translate"
)

func TestClientsBounded(t *testing.T) {
	tr := startReceiver(t, Config{})
	s := tr.rc.sources
	counts := []translate.ServiceCount{{Service: "a", Spans: 1}}
	s.add(protoZipkin, encJSON, counts)
	for i := 0; i < 20; i++ {
		s.noteClient(protoZipkin, encJSON, counts, fmt.Sprintf("10.0.0.%d:%d", i%12, 40000+i))
	}
	sources := tr.rc.Sources()
	if len(sources) != 1 {
		t.Fatalf("sources %+v", sources)
	}
	// 20 requests from 12 hosts: the first 8 hosts kept, the 4 requests
	// from the other 4 counted; repeats of kept hosts change nothing.
	got := sources[0]
	if len(got.Clients) != maxClients || got.Clients[0] != "10.0.0.0" || got.Clients[7] != "10.0.0.7" || got.MoreClients != 4 {
		t.Errorf("clients %v, more %d; want 10.0.0.0…7 and 4 more", got.Clients, got.MoreClients)
	}
}

// TestRejectionsAndClientsThroughHTTP: a refused request is reported by
// protocol and reason, an accepted one by its client's host.
func TestRejectionsAndClientsThroughHTTP(t *testing.T) {
	tr := startReceiver(t, Config{})
	base := "http://" + tr.addr
	if code, _, _ := post(t, h1Client(), base+"/api/v2/spans", "application/xml", []byte("<x/>")); code != 415 {
		t.Fatalf("xml: %d, want 415", code)
	}
	body := []byte(`[{"traceId":"0af7651916cd43dd8448eb211c80319c","id":"000000000000000a","name":"x","timestamp":1700000000000000,"duration":1,"localEndpoint":{"serviceName":"a"}}]`)
	if code, msg, _ := post(t, h1Client(), base+"/api/v2/spans", "application/json", body); code != 202 {
		t.Fatalf("zipkin: %d %s", code, msg)
	}
	if got, want := tr.rc.Rejections(), []RejectedStat{{Protocol: protoZipkin, Reason: "unsupported_media_type", Requests: 1}}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rejections %+v, want %+v", got, want)
	}
	sources := tr.rc.Sources()
	if len(sources) != 1 || fmt.Sprint(sources[0].Clients) != "[127.0.0.1]" || sources[0].MoreClients != 0 {
		t.Errorf("sources %+v, want one from client 127.0.0.1", sources)
	}
}
