package handlers

import (
	"bytes"
	"maps"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

// writeReply answers with the status, headers and body c.Data gives.
func TestWriteReplyAnswersAsGinData(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	for _, reply := range [][]byte{
		[]byte(`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":0}`),
		[]byte(`{"ActionStatus":"OK","ErrorInfo":"","ErrorCode":1}`),
		[]byte(`{"ActionStatus":"OK","ErrorInfo":"Applications are closed.","ErrorCode":10130}`),
		bytes.Repeat([]byte("x"), 5000),
		{},
	} {
		answer := func(write func(c *gin.Context)) *httptest.ResponseRecorder {
			r := gin.New()
			r.POST("/", write)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", nil))
			return w
		}
		got := answer(func(c *gin.Context) { writeReply(c, reply) })
		want := answer(func(c *gin.Context) { c.Data(http.StatusOK, "application/json; charset=utf-8", reply) })
		if got.Code != want.Code || !maps.EqualFunc(got.Header(), want.Header(), func(a, b []string) bool {
			return len(a) == len(b) && (len(a) == 0 || a[0] == b[0])
		}) || !bytes.Equal(got.Body.Bytes(), want.Body.Bytes()) {
			t.Errorf("reply %.40q: answered %d %v %q; c.Data %d %v %q", reply,
				got.Code, got.Header(), got.Body, want.Code, want.Header(), want.Body)
		}
	}
}

func TestTheWriteDeadlineIsLeftAsIsOnlyWhenItEndsAsARearmedOne(t *testing.T) {
	tests := []struct {
		writeTimeout, elapsed time.Duration
		leftAsIs              bool
	}{
		{ReplyWriteTimeout, 0, true},
		{ReplyWriteTimeout, 2 * time.Millisecond, true},
		{ReplyWriteTimeout, ReplyWriteTimeout / 100, true},
		{ReplyWriteTimeout, ReplyWriteTimeout/100 + time.Millisecond, false},
		{ReplyWriteTimeout, 5 * time.Second, false},
		{ReplyWriteTimeout, 20 * time.Second, false},
		{100 * time.Millisecond, 0, false},
		{100 * time.Millisecond, 400 * time.Millisecond, false},
		{ReplyWriteTimeout + time.Second, 0, false},
		{ReplyWriteTimeout + time.Second, time.Second, true},
		{0, 0, false},
		{0, 5 * time.Second, false},
	}
	for _, tt := range tests {
		if got := deadlineLeftAsIs(tt.writeTimeout, tt.elapsed); got != tt.leftAsIs {
			t.Errorf("write timeout %v, %v elapsed: left as is %v; want %v", tt.writeTimeout, tt.elapsed, got, tt.leftAsIs)
		}
	}
}
