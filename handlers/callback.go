package handlers

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/timguard/timguard/internal/lazyctx"
	"github.com/timguard/timguard/policy"
	"github.com/timguard/timguard/tim"
)

type callbackHandler struct {
	cfg  Config
	deps Deps
	log  *slog.Logger
	bufs sync.Pool
}

// serve is POST {callback.path}: authenticate, decode, decide, answer.
func (h *callbackHandler) serve(c *gin.Context) {
	start := time.Now()
	q := parseCallbackQuery(c.Request.URL.RawQuery)
	command := q.command
	if err := h.authenticate(q.appID, q.requestTime, q.sign); err != nil {
		var ae *tim.AuthError
		code := "unauthorized"
		if errors.As(err, &ae) {
			code = ae.Code
		}
		h.log.Warn("callback refused: authentication failed", "reason", code, "command", command, "client", c.ClientIP())
		h.observe(command, http.StatusUnauthorized)
		unauthorized(c, code, err.Error())
		return
	}

	body, err := h.readBody(c)
	if err != nil {
		status, code := http.StatusBadRequest, "bad_body"
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			status, code = http.StatusRequestEntityTooLarge, "too_large"
			err = errors.New("body is larger than callback.max_body_bytes (" + strconv.FormatInt(h.cfg.MaxBodyBytes, 10) + " bytes)")
		}
		h.observe(command, status)
		jsonError(c, status, code, err.Error())
		return
	}
	defer h.putBuf(body)

	cb, err := tim.DecodeCallback(command, body.Bytes())
	if err != nil {
		h.log.Info("callback refused: malformed", "command", command, "err", err)
		h.observe(command, http.StatusBadRequest)
		jsonError(c, http.StatusBadRequest, "malformed", err.Error())
		return
	}
	if cmd := cb.Header().CallbackCommand; command == "" {
		command = cmd
	}

	now := h.deps.Now()
	ev := policy.NewEvent(cb, body.Bytes(), now)
	ev.Platform = q.platform
	// Done of this context makes its timer: only what waits on it pays.
	ctx, cancel := lazyctx.WithDeadline(c.Request.Context(), time.Now().Add(h.cfg.Deadline))
	out := h.deps.Decider.Handle(ctx, ev)
	cancel()

	reply, err := out.Reply.Encode()
	if err != nil {
		h.log.Error("encode reply; answering OK instead", "command", command, "event_id", ev.ID, "err", err)
		ok := tim.OK()
		reply, _ = ok.Encode()
	}
	h.observe(command, http.StatusOK)
	rearmWriteDeadline(c, start)
	writeReply(c, reply)
}

// rearmWriteDeadline gives writing the answer ReplyWriteTimeout from now.
// The server's write timeout runs from the request's arrival: a decision
// that took long (an 8,000-member join commits in many round trips, and
// the commit is not cut at the deadline) would find it passed and the
// connection closed without an answer. The timeout is for a client slow to
// take the answer, so it starts again here, unless the deadline in force
// already is that (deadlineLeftAsIs): setting one takes a lock and moves a
// timer of the connection's poller on every callback.
func rearmWriteDeadline(c *gin.Context, start time.Time) {
	if srv, _ := c.Request.Context().Value(http.ServerContextKey).(*http.Server); srv != nil &&
		deadlineLeftAsIs(srv.WriteTimeout, time.Since(start)) {
		return
	}
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(ReplyWriteTimeout))
}

// deadlineLeftAsIs reports whether the write deadline the server set as the
// request arrived (writeTimeout from then; elapsed since) ends within 1% of
// ReplyWriteTimeout from now, not later: the server's write timeout is
// ReplyWriteTimeout, as the app's is, and the callback was answered within
// ReplyWriteTimeout/100.
func deadlineLeftAsIs(writeTimeout, elapsed time.Duration) bool {
	left := writeTimeout - elapsed
	return writeTimeout > 0 && left <= ReplyWriteTimeout && left >= ReplyWriteTimeout-ReplyWriteTimeout/100
}

// jsonContentType and okContentLength are header values of the replies,
// shared by every answer and so never modified (Header.Add appends to a full
// slice, which copies it): c.Data builds them per callback.
var (
	jsonContentType = []string{"application/json; charset=utf-8"}
	okLength        = func() int {
		ok := tim.OK()
		b, _ := ok.Encode()
		return len(b)
	}()
	okContentLength = []string{strconv.Itoa(okLength)}
)

// writeReply answers 200 with a JSON reply as c.Data does.
func writeReply(c *gin.Context, reply []byte) {
	c.Status(http.StatusOK)
	header := c.Writer.Header()
	if len(header["Content-Type"]) == 0 {
		header["Content-Type"] = jsonContentType
	}
	switch {
	case len(reply) == okLength:
		header["Content-Length"] = okContentLength
	case len(reply) > 0:
		header["Content-Length"] = []string{strconv.Itoa(len(reply))}
	}
	if _, err := c.Writer.Write(reply); err != nil {
		_ = c.Error(err)
		c.Abort()
	}
}

// ReplyWriteTimeout bounds writing a callback's answer once it is ready.
const ReplyWriteTimeout = 10 * time.Second

// authenticate checks SdkAppid, then the signature when tokens are set.
func (h *callbackHandler) authenticate(appID, requestTime, sign string) error {
	if appID == "" {
		return tim.ErrMissingSdkAppID
	}
	if id, err := strconv.ParseUint(appID, 10, 64); err != nil || id != h.cfg.SDKAppID {
		return tim.ErrWrongSdkAppID
	}
	var tokens []string
	if h.cfg.Tokens != nil {
		tokens = h.cfg.Tokens()
	}
	if len(tokens) == 0 {
		return nil
	}
	v := tim.SignVerifier{Tokens: tokens, MaxSkew: h.cfg.MaxClockSkew}
	return v.Verify(requestTime, sign, h.deps.Now())
}

// readBody reads the body into a pooled buffer, refusing one longer than
// MaxBodyBytes with an *http.MaxBytesError as http.MaxBytesReader does (and
// passing the body's own errors on as it does), without wrapping the body
// in one per callback.
func (h *callbackHandler) readBody(c *gin.Context) (*bytes.Buffer, error) {
	buf, _ := h.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	if err := readLimited(buf, c.Request.Body, h.cfg.MaxBodyBytes); err != nil {
		h.putBuf(buf)
		return nil, err
	}
	return buf, nil
}

// readLimited appends r to buf up to io.EOF, as io.Copy through
// http.MaxBytesReader(w, r, limit) does: reads of at least bytes.MinRead,
// each asking for no more than one byte past the limit, and an
// *http.MaxBytesError once a read passes it.
func readLimited(buf *bytes.Buffer, r io.Reader, limit int64) error {
	limit = max(limit, 0)
	left := limit
	for {
		buf.Grow(bytes.MinRead)
		p := buf.AvailableBuffer()
		p = p[:cap(p)]
		if int64(len(p)) >= left+1 {
			p = p[:left+1]
		}
		n, err := r.Read(p)
		if int64(n) > left {
			return &http.MaxBytesError{Limit: limit}
		}
		left -= int64(n)
		buf.Write(p[:n]) // p is buf's free space: this only takes the bytes in
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

func (h *callbackHandler) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<16 {
		h.bufs.Put(b)
	}
}

func (h *callbackHandler) observe(command string, status int) {
	if h.deps.Observe != nil {
		h.deps.Observe(command, status)
	}
}
