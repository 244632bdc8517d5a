package redis

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/timguard/timguard/store/internal/storeutil"
)

// cmdBuf builds the commands of one Enrich or Commit part with a handful
// of allocations in all instead of five or six per command, as go-redis'
// typed methods make them (a pipeline, an argument slice per command, an
// interface box per string argument, the strings themselves): the
// arguments of every command share one backing array; the strings made
// for them (keys, entry names, times) are cut from one buffer; and each
// string goes in as a *string, which go-redis writes as the string itself
// and which fits in an interface without an allocation; and the integer
// commands, nearly all of them, are go-redis command objects cut from one
// array. What remains is one object per other command (HMGET, SET NX,
// scripts).
//
// The bytes sent are those of the typed methods (TestBuiltCommandsAreTheTypedOnes).
// A *string shows as an address in Cmder.String, which nothing here prints.
type cmdBuf struct {
	ctx  context.Context
	cmds []goredis.Cmder
	args []any
	strs []string
	// ints holds the integer commands; the pointers in cmds stay valid
	// when it is full: the next ones go in a new array.
	ints []goredis.IntCmd
	sb   strings.Builder
	// memberID, member0 and members cache the entry names ID/0, ID/1
	// ...: every window an event touches gets the same ones.
	memberID string
	member0  any
	members  []any
	// typed, made on first use, builds the rare commands with go-redis'
	// own methods (scripts, streams); it is never executed itself.
	typed goredis.Pipeliner
	rdb   goredis.UniversalClient
	size  bufSize // as init sized it
}

// used is what b holds.
func (b *cmdBuf) used() bufSize {
	return bufSize{cmds: len(b.cmds), args: len(b.args), strs: len(b.strs), bytes: b.sb.Len()}
}

// bufSize is about how much a cmdBuf will hold: cmds commands of args
// arguments in all, strs of them strings made for them of bytes bytes in
// all. The sizes only save allocations: a buffer outgrown grows.
type bufSize struct{ cmds, args, strs, bytes int }

func (z *bufSize) add(o bufSize) {
	z.cmds, z.args, z.strs, z.bytes = z.cmds+o.cmds, z.args+o.args, z.strs+o.strs, z.bytes+o.bytes
}

// cmdBufs keeps the arrays of cmdBufs whose pipelines finished: an enrich
// part's (a few hundred bytes of command objects and arguments, in
// pointers the collector scans) cost every callback an allocation and its
// zeroing otherwise.
var cmdBufs = sync.Pool{New: func() any { return new(cmdBuf) }}

// maxPooled bounds the commands of a cmdBuf put back in cmdBufs, so that
// one event with thousands of subjects does not leave large arrays behind.
const maxPooled = 64

// newCmdBuf returns a cmdBuf readied by init, with the arrays of one
// released earlier when there is one. Release it once its commands'
// replies are read.
func newCmdBuf(ctx context.Context, rdb goredis.UniversalClient, z bufSize) *cmdBuf {
	b := cmdBufs.Get().(*cmdBuf)
	b.init(ctx, rdb, z)
	return b
}

// init readies b (which may not be copied afterwards) for commands sent
// with ctx on rdb, reusing the arrays it has when they are large enough.
func (b *cmdBuf) init(ctx context.Context, rdb goredis.UniversalClient, z bufSize) {
	b.ctx, b.rdb, b.size = ctx, rdb, z
	b.cmds = reuse(b.cmds, z.cmds)
	b.args = reuse(b.args, z.args)
	b.strs = reuse(b.strs, z.strs)
	b.ints = reuse(b.ints, z.cmds)
	// The strings cut from the builder stay as they are (a Builder never
	// changes what it wrote): a new one for each use, as what the last
	// use cut may still be held (in an error, say).
	b.sb = strings.Builder{}
	b.sb.Grow(z.bytes)
	b.memberID, b.member0, b.members = "", nil, b.members[:0]
	b.typed = nil
}

// reuse returns s emptied when it has room for n, else a new slice.
func reuse[T any](s []T, n int) []T {
	if cap(s) >= n {
		return s[:0]
	}
	return make([]T, 0, n)
}

// release puts b back in cmdBufs. Call it only once nothing uses its
// commands any more: after their pipeline ran and their replies were
// read, never after a wait for a pipeline that ended first (the sender may
// still hold them). b must not be used afterwards.
func (b *cmdBuf) release() {
	// A part of many commands, or of one with many arguments (a ZADD of
	// a join wave's thousands of members), is not kept.
	if cap(b.cmds) > maxPooled || cap(b.ints) > maxPooled || cap(b.args) > 8*maxPooled ||
		cap(b.strs) > 8*maxPooled || cap(b.members) > maxPooled {
		return
	}
	// What b refers to (the context, replies, strings) goes with it.
	clear(b.cmds)
	clear(b.args)
	clear(b.strs)
	clear(b.ints)
	clear(b.members)
	b.cmds, b.args, b.strs, b.ints, b.members = b.cmds[:0], b.args[:0], b.strs[:0], b.ints[:0], b.members[:0]
	b.ctx, b.rdb, b.typed, b.member0, b.memberID = nil, nil, nil, nil, ""
	b.sb = strings.Builder{}
	cmdBufs.Put(b)
}

// str keeps s for the commands and returns it as an argument. The
// pointer stays valid when strs grows: the old array keeps the string.
func (b *cmdBuf) str(s string) any {
	b.strs = append(b.strs, s)
	return &b.strs[len(b.strs)-1]
}

// cat returns x+y as an argument.
func (b *cmdBuf) cat(x, y string) any {
	start := b.sb.Len()
	b.sb.WriteString(x)
	b.sb.WriteString(y)
	// Builder never changes bytes it has written, so the string cut
	// here stays as it is while the buffer grows.
	return b.str(b.sb.String()[start:])
}

// userKey returns keys.strikes or keys.activity: prefix, then the group's
// length, the group and the user.
func (b *cmdBuf) userKey(prefix, group, user string) any {
	start := b.sb.Len()
	b.sb.WriteString(prefix)
	var d [20]byte
	b.sb.Write(strconv.AppendInt(d[:0], int64(len(group)), 10))
	b.sb.WriteByte(':')
	b.sb.WriteString(group)
	b.sb.WriteByte(':')
	b.sb.WriteString(user)
	return b.str(b.sb.String()[start:])
}

// num returns prefix followed by n in decimal as an argument.
func (b *cmdBuf) num(prefix string, n int64) any {
	start := b.sb.Len()
	b.sb.WriteString(prefix)
	var d [20]byte
	b.sb.Write(strconv.AppendInt(d[:0], n, 10))
	return b.str(b.sb.String()[start:])
}

// member returns the name of entry i added by id (storeutil.Member).
func (b *cmdBuf) member(id string, i int) any {
	if id != b.memberID || b.member0 == nil {
		b.memberID, b.member0, b.members = id, b.entry(id, 0), b.members[:0]
	}
	if i == 0 {
		return b.member0
	}
	for len(b.members) < i {
		b.members = append(b.members, b.entry(id, len(b.members)+1))
	}
	return b.members[i-1]
}

func (b *cmdBuf) entry(id string, i int) any {
	start := b.sb.Len()
	b.sb.WriteString(id)
	b.sb.WriteByte('/')
	var d [20]byte
	b.sb.Write(strconv.AppendInt(d[:0], int64(i), 10))
	return b.str(b.sb.String()[start:])
}

// argsFrom returns the arguments added since start, capped so that the
// next command's cannot run into them.
func (b *cmdBuf) argsFrom(start int) []any {
	return b.args[start:len(b.args):len(b.args)]
}

// intCmd adds a command whose reply is an integer (ZADD, ZCOUNT,
// PEXPIRE...). NewIntCmd's object is copied into ints, as go-redis made
// it, without being allocated on its own.
func (b *cmdBuf) intCmd(start int) *goredis.IntCmd {
	if len(b.ints) == cap(b.ints) {
		b.ints = make([]goredis.IntCmd, 0, max(2*cap(b.ints), 4))
	}
	b.ints = append(b.ints, *goredis.NewIntCmd(b.ctx, b.argsFrom(start)...))
	cmd := &b.ints[len(b.ints)-1]
	b.cmds = append(b.cmds, cmd)
	return cmd
}

func (b *cmdBuf) boolCmd(start int) *goredis.BoolCmd {
	cmd := goredis.NewBoolCmd(b.ctx, b.argsFrom(start)...)
	b.cmds = append(b.cmds, cmd)
	return cmd
}

// typedCmds returns the pipeline the rare commands are built on. Their
// commands are taken from it as they are made (add), in order with the
// others.
func (b *cmdBuf) typedCmds() goredis.Pipeliner {
	if b.typed == nil {
		b.typed = b.rdb.Pipeline()
	}
	return b.typed
}

// add appends cmd, made on typedCmds, in its turn.
func (b *cmdBuf) add(cmd goredis.Cmder) {
	b.cmds = append(b.cmds, cmd)
}

// touch queues one window's commands: EventID/0..add-1 join at now (ZADD
// NX, then PEXPIRE so that an idle window goes away), and with read the
// count of (now-span, now] (ZCOUNT; nil without read). Entries at or
// before now-span leave (ZREMRANGEBYSCORE) on one adding touch in
// trimEvery, chosen by the event: the count is exact whatever is left to
// trim, as ZCOUNT reads the window's range only, and a busy window keeps
// no more than a few touches' worth of stale entries. A touch that only
// reads is one command. nowA is now as an argument, shared by the touches
// of one part.
func (b *cmdBuf) touch(key any, id string, add int, span time.Duration, now int64, nowA any, read bool) *goredis.IntCmd {
	from := now - span.Milliseconds()
	if add > 0 {
		if trims(id) {
			start := len(b.args)
			b.args = append(b.args, "zremrangebyscore", key, "-inf", b.num("", from))
			b.intCmd(start)
		}
		// ZADD key NX score member ...: the score is now, which go-redis
		// would write as a float64 in the same digits.
		start := len(b.args)
		b.args = append(b.args, "zadd", key, "nx")
		for i := range add {
			b.args = append(b.args, nowA, b.member(id, i))
		}
		b.intCmd(start)
		start = len(b.args)
		b.args = append(b.args, "pexpire", key, b.num("", (span+storeutil.ExpirySlack).Milliseconds()))
		b.intCmd(start) // its 0 or 1 is not read
	}
	if !read {
		return nil
	}
	start := len(b.args)
	b.args = append(b.args, "zcount", key, b.num("(", from), nowA)
	return b.intCmd(start)
}

// touchSize is what touch adds for a window whose key is keyLen long,
// with entries named by id, but for the entry names (memberSize).
func touchSize(keyLen int, id string, add int, read bool) bufSize {
	z := bufSize{strs: 1, bytes: keyLen}
	if add > 0 {
		z.add(bufSize{cmds: 2, args: 3 + 2*add + 3, strs: 1, bytes: 20})
		if trims(id) {
			z.add(bufSize{cmds: 1, args: 4, strs: 1, bytes: 20})
		}
	}
	if read {
		z.add(bufSize{cmds: 1, args: 4, strs: 1, bytes: 21})
	}
	return z
}

// memberSize is what the names of n entries added by id take (member).
func memberSize(id string, n int) bufSize {
	return bufSize{strs: n, bytes: n * (len(id) + 21)}
}
