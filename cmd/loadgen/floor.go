package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/store/redis"
)

// floorCommand is the hidden subcommand that serves the floor handler.
const floorCommand = "floor-server"

// floorKeys is how many counters the floor handler spreads its writes over.
const floorKeys = 1000

// serveFloor serves POST /callback with a gin handler that answers the OK
// envelope only after one pipelined Redis round trip, INCR and PEXPIRE of
// a counter: the least any handler that keeps shared state pays per
// callback. It prints "listening ADDR" on stdout once it accepts
// connections.
func serveFloor(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen "+floorCommand, flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	url := fs.String("redis-url", "", "Redis to write to")
	prefix := fs.String("prefix", "timguard-floor:", "prefix of the counters' keys")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// url.Error would print the URL, password included.
	u, err := neturl.Parse(*url)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		fmt.Fprintf(stderr, "floor server: -redis-url: %v\n", err)
		return 2
	}
	opts, err := goredis.ParseURL(*url)
	if err == nil {
		// The same RESP version as the bot's store, so that the floor
		// pays what the bot's client pays per reply.
		opts.Protocol, err = redis.Protocol(u.Query(), opts.Protocol)
	}
	if err != nil {
		fmt.Fprintf(stderr, "floor server: -redis-url: %v\n", err)
		return 2
	}
	opts.ContextTimeoutEnabled = true
	rdb := goredis.NewClient(opts)
	defer rdb.Close()
	pctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	err = rdb.Ping(pctx).Err()
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "floor server: %v\n", err)
		return 1
	}
	keys := make([]string, floorKeys)
	for i := range keys {
		keys[i] = *prefix + strconv.Itoa(i)
	}
	var n atomic.Uint64
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.POST("/callback", func(c *gin.Context) {
		_, _ = io.Copy(io.Discard, c.Request.Body)
		key := keys[n.Add(1)%floorKeys]
		// The IM server's window bounds the round trip, as it bounds the
		// bot's answer: a busy machine slows the floor, it does not fail it.
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		pipe := rdb.Pipeline()
		pipe.Incr(ctx, key)
		pipe.PExpire(ctx, key, time.Minute)
		if _, err := pipe.Exec(ctx); err != nil {
			c.String(http.StatusInternalServerError, "redis: %v", err)
			return
		}
		c.Data(http.StatusOK, "application/json; charset=utf-8", okEnvelope)
	})
	return serveGin(r, *listen, "floor server", stdout, stderr)
}
