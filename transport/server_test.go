package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
)

// fakeZipkin takes bodies starting with "[" and hands the others over.
type fakeZipkin struct {
	mu       sync.Mutex
	bodies   []string
	rejected []error
}

func (f *fakeZipkin) AdmitZipkin() bool { return true }

func (f *fakeZipkin) ServeZipkin(w http.ResponseWriter, req *ZipkinRequest) bool {
	if !bytes.HasPrefix(req.Body, []byte("[")) {
		return false
	}
	f.mu.Lock()
	f.bodies = append(f.bodies, req.Path+" "+req.Encoding+" "+string(req.Body))
	f.mu.Unlock()
	if string(req.Body) == "[full]" {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusTooManyRequests)
		io.WriteString(w, "queue full\n")
	}
	return true
}

func (f *fakeZipkin) RejectZipkin(w http.ResponseWriter, err error) {
	f.mu.Lock()
	f.rejected = append(f.rejected, err)
	f.mu.Unlock()
	w.WriteHeader(http.StatusTooManyRequests)
}

const fakeMethod = "/fake.Service/Call"

// fakeUnary serves fakeMethod by echoing the message upper-cased.
type fakeUnary struct {
	mu       sync.Mutex
	served   int
	rejected []error
}

func (f *fakeUnary) Serves(method string) bool { return method == fakeMethod }
func (f *fakeUnary) Unknown(method string) error {
	return status.Errorf(codes.Unimplemented, "no %s here", method)
}
func (f *fakeUnary) Admit(string) error                 { return nil }
func (f *fakeUnary) Decode(string, []byte) (any, error) { return nil, nil }
func (f *fakeUnary) Refuse(_ string, err error) error   { return err }
func (f *fakeUnary) Reject(_ string, err error) {
	f.mu.Lock()
	f.rejected = append(f.rejected, err)
	f.mu.Unlock()
}
func (f *fakeUnary) Serve(_, _ string, _ any, msg []byte, buf mem.Buffer) ([]byte, error) {
	reply := bytes.ToUpper(msg)
	buf.Free()
	f.mu.Lock()
	f.served++
	f.mu.Unlock()
	return reply, nil
}

// rawCodec passes bytes through, as the receiver's does.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}

var _ encoding.CodecV2 = rawCodec{}

type testServer struct {
	srv    *Server
	addr   string
	zipkin *fakeZipkin
	unary  *fakeUnary
	plain  chan string // what the net/http handler was given
}

func startServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ts := &testServer{zipkin: &fakeZipkin{}, unary: &fakeUnary{}, plain: make(chan string, 10)}
	httpHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ts.plain <- r.Method + " " + r.URL.Path + " " + string(b)
		w.WriteHeader(http.StatusTeapot)
	})
	cfg.FastPaths = true
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = 1 << 20
	}
	gs := grpc.NewServer(grpc.ForceServerCodecV2(rawCodec{}))
	ts.srv = New(cfg, Handlers{HTTP: httpHandler, GRPC: gs, Zipkin: ts.zipkin, Unary: ts.unary},
		prometheus.NewRegistry(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = ln.Addr().String()
	go ts.srv.Serve(ln)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ts.srv.Shutdown(ctx)
	})
	return ts
}

func post(path, ctype, body string) string {
	return fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s", path, ctype, len(body), body)
}

// exchange sends raw requests on one connection and reads n responses.
func exchange(t *testing.T, addr, raw string, n int) []*http.Response {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	io.WriteString(c, raw)
	br := bufio.NewReader(c)
	var out []*http.Response
	for range n {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("response %d: %v", len(out)+1, err)
		}
		io.ReadAll(resp.Body)
		out = append(out, resp)
	}
	return out
}

// The HTTP/1.1 fast path hands the Zipkin handler what it read, answers 202
// or what the handler wrote, and gives net/http, with the same bytes, every
// request the handler does not take and everything after it.
func TestServerHTTP1Handlers(t *testing.T) {
	ts := startServer(t, Config{})
	resps := exchange(t, ts.addr, post("/api/v2/spans", "application/json", "[1]")+
		post("/api/v1/spans", "application/x-protobuf", "[full]")+
		post("/api/v2/spans", "application/json", "{not mine}")+
		post("/api/v2/spans", "application/json", "[after]"), 4)
	want := []int{http.StatusAccepted, http.StatusTooManyRequests, http.StatusTeapot, http.StatusTeapot}
	for i, r := range resps {
		if r.StatusCode != want[i] {
			t.Errorf("response %d: status %d, want %d", i+1, r.StatusCode, want[i])
		}
	}
	if got := resps[1].Header.Get("Retry-After"); got != "5" {
		t.Errorf("the handler's header Retry-After=%q did not reach the client", got)
	}
	ts.zipkin.mu.Lock()
	bodies := strings.Join(ts.zipkin.bodies, "|")
	ts.zipkin.mu.Unlock()
	if got := bodies; got != "/api/v2/spans json [1]|/api/v1/spans proto [full]" {
		t.Errorf("the Zipkin handler served %q", got)
	}
	for _, w := range []string{"POST /api/v2/spans {not mine}", "POST /api/v2/spans [after]"} {
		if got := <-ts.plain; got != w {
			t.Errorf("net/http was given %q, want %q", got, w)
		}
	}
	if s, h, _, _ := ts.srv.FastPathCounts(); s != 2 || h != 1 {
		t.Errorf("fast path counts served=%d handed over=%d, want 2 and 1", s, h)
	}
}

// A body the budget has no room for reaches the handler as ErrOverBudget,
// for it to count and answer; the budget is given back.
func TestServerHTTP1OverBudget(t *testing.T) {
	budget := NewFixedBudget(10)
	ts := startServer(t, Config{Budget: budget})
	resps := exchange(t, ts.addr, post("/api/v2/spans", "application/json", "[0123456789]"), 1)
	if resps[0].StatusCode != http.StatusTooManyRequests {
		t.Errorf("status %d, want the handler's 429", resps[0].StatusCode)
	}
	ts.zipkin.mu.Lock()
	rejected := ts.zipkin.rejected
	ts.zipkin.mu.Unlock()
	if len(rejected) != 1 || !errors.Is(rejected[0], ErrOverBudget) {
		t.Errorf("the handler was given %v, want ErrOverBudget", rejected)
	}
	if n := budget.InUse(); n != 0 {
		t.Errorf("%d bytes still charged after the refusal", n)
	}
}

// Unary gRPC of a method the handler serves takes the fast path; another
// method gets the handler's Unknown status; both answered as a grpc-go
// client reads them.
func TestServerUnaryHandler(t *testing.T) {
	ts := startServer(t, Config{})
	conn, err := grpc.NewClient(ts.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, reply := []byte("hello"), []byte(nil)
	if err := conn.Invoke(ctx, fakeMethod, &req, &reply); err != nil {
		t.Fatalf("fast path call: %v", err)
	}
	if string(reply) != "HELLO" {
		t.Errorf("reply %q, want the handler's HELLO", reply)
	}
	err = conn.Invoke(ctx, "/fake.Service/Other", &req, &reply)
	if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "no /fake.Service/Other here" {
		t.Errorf("another method: %v, want the handler's UNIMPLEMENTED", err)
	}
	ts.unary.mu.Lock()
	served := ts.unary.served
	ts.unary.mu.Unlock()
	if _, _, s, _ := ts.srv.FastPathCounts(); s != 1 || served != 1 {
		t.Errorf("fast path served %d, handler %d, want 1 and 1", s, served)
	}
}
