// Package pathcut is the seed's broken path as a TCP proxy, for tests: it
// forwards every connection to a target except those whose first request is
// a Zipkin POST, which it closes without a reply, as a blocked sidecar path
// looks to a client behind a proxy.
package pathcut

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// Zipkin listens on a loopback port until the test ends and returns its
// address.
func Zipkin(t testing.TB, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go forward(c, target)
		}
	}()
	return ln.Addr().String()
}

func forward(c net.Conn, target string) {
	defer c.Close()
	head := make([]byte, len("POST /api/v2/spans"))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := io.ReadFull(c, head)
	c.SetReadDeadline(time.Time{})
	if bytes.HasPrefix(head[:n], []byte("POST /api/v")) {
		return
	}
	up, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer up.Close()
	up.Write(head[:n])
	go io.Copy(up, c)
	io.Copy(c, up)
}
