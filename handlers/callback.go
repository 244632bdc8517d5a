package handlers

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

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
	ctx, cancel := context.WithTimeout(c.Request.Context(), h.cfg.Deadline)
	out := h.deps.Decider.Handle(ctx, ev)
	cancel()

	reply, err := out.Reply.Encode()
	if err != nil {
		h.log.Error("encode reply; answering OK instead", "command", command, "event_id", ev.ID, "err", err)
		ok := tim.OK()
		reply, _ = ok.Encode()
	}
	h.observe(command, http.StatusOK)
	// The server's write timeout runs from the request's arrival: a
	// decision that took long (an 8,000-member join commits in many round
	// trips, and the commit is not cut at the deadline) would find it
	// passed and the connection closed without an answer. The timeout is
	// for a client slow to take the answer, so it starts again here.
	_ = http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(ReplyWriteTimeout))
	c.Data(http.StatusOK, "application/json; charset=utf-8", reply)
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

func (h *callbackHandler) readBody(c *gin.Context) (*bytes.Buffer, error) {
	buf, _ := h.bufs.Get().(*bytes.Buffer)
	if buf == nil {
		buf = new(bytes.Buffer)
	}
	buf.Reset()
	r := http.MaxBytesReader(c.Writer, c.Request.Body, h.cfg.MaxBodyBytes)
	if _, err := io.Copy(buf, r); err != nil {
		h.putBuf(buf)
		return nil, err
	}
	return buf, nil
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
