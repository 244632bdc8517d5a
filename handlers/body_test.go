package handlers

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"
)

// chunkReader gives body in reads of at most the sizes of chunks in turn,
// then err (io.EOF when nil), with the last bytes when last is set.
type chunkReader struct {
	body   []byte
	chunks []byte
	err    error
	last   bool
	i      int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.body) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		return 0, io.EOF
	}
	n := len(p)
	if len(r.chunks) > 0 {
		n = min(n, int(r.chunks[r.i%len(r.chunks)])+1)
		r.i++
	}
	n = copy(p, r.body[:min(n, len(r.body))])
	r.body = r.body[n:]
	if len(r.body) == 0 && r.last {
		if r.err != nil {
			return n, r.err
		}
		return n, io.EOF
	}
	return n, nil
}

func newChunkReader(body, chunks []byte, failing, last bool) *chunkReader {
	r := &chunkReader{body: body, chunks: chunks, last: last}
	if failing {
		r.err = errors.New("connection reset")
	}
	return r
}

// stdReadBody is what the callback did before readLimited, into a pooled
// buffer of capacity c.
func stdReadBody(r io.Reader, limit int64, c int) ([]byte, error) {
	buf := bytes.NewBuffer(make([]byte, 0, c))
	_, err := io.Copy(buf, http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(r), limit))
	return buf.Bytes(), err
}

func sameBodyRead(t *testing.T, name string, mk func() io.Reader, limit int64, used *bytes.Buffer) {
	t.Helper()
	used.Reset()
	wantBody, wantErr := stdReadBody(mk(), limit, used.Cap())
	err := readLimited(used, mk(), limit)
	if (err == nil) != (wantErr == nil) || err != nil && err.Error() != wantErr.Error() {
		t.Fatalf("%s, limit %d: error %v; MaxBytesReader %v", name, limit, err, wantErr)
	}
	var tooBig, wantTooBig *http.MaxBytesError
	if errors.As(err, &tooBig) != errors.As(wantErr, &wantTooBig) || tooBig != nil && tooBig.Limit != wantTooBig.Limit {
		t.Fatalf("%s, limit %d: error %#v; MaxBytesReader %#v", name, limit, err, wantErr)
	}
	if err == nil && !bytes.Equal(used.Bytes(), wantBody) {
		t.Fatalf("%s, limit %d: read %q; MaxBytesReader %q", name, limit, used.Bytes(), wantBody)
	}
}

func TestReadLimitedReadsAsMaxBytesReader(t *testing.T) {
	long := []byte(strings.Repeat("0123456789", 300))
	readers := map[string]func(b []byte) io.Reader{
		"whole":     func(b []byte) io.Reader { return bytes.NewReader(b) },
		"one byte":  func(b []byte) io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"halves":    func(b []byte) io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
		"data+EOF":  func(b []byte) io.Reader { return iotest.DataErrReader(bytes.NewReader(b)) },
		"timeout":   func(b []byte) io.Reader { return iotest.TimeoutReader(bytes.NewReader(b)) },
		"failing":   func(b []byte) io.Reader { return newChunkReader(b, []byte{7, 200}, true, false) },
		"fail+data": func(b []byte) io.Reader { return newChunkReader(b, nil, true, true) },
	}
	// A buffer used before, as the pool's are.
	var used bytes.Buffer
	for name, mk := range readers {
		for _, size := range []int{0, 1, 99, 100, 101, 511, 512, 513, 3000} {
			for _, limit := range []int64{-1, 0, 1, 100, 512, 1 << 20} {
				sameBodyRead(t, name, func() io.Reader { return mk(long[:size]) }, limit, &used)
			}
		}
	}
}

func FuzzReadLimited(f *testing.F) {
	f.Add([]byte(`{"a":1}`), []byte{3}, int64(5), false, false)
	f.Add(bytes.Repeat([]byte("x"), 1500), []byte{255, 0, 17}, int64(1024), true, true)
	f.Add([]byte{}, []byte{}, int64(0), true, false)
	var used bytes.Buffer
	f.Fuzz(func(t *testing.T, body, chunks []byte, limit int64, failing, last bool) {
		limit %= 1 << 16
		sameBodyRead(t, "fuzz", func() io.Reader { return newChunkReader(body, chunks, failing, last) }, limit, &used)
	})
}
