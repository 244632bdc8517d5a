// Package harness runs timguard the way production does, for the load
// generator (cmd/loadgen) and the resilience suite (test/resilience/): the real
// bot binary as a process, a private redis-server, the fake IM server
// (tim/timtest) in the calling process, and signed callbacks of a realistic
// mix sent over keep-alive HTTP at a fixed rate or as fast as possible.
//
// The parts:
//
//   - Redis: a private redis-server that can be killed and started again
//     on the same port, optionally with an append-only file so that its data
//     (the outbox) survives.
//   - BuildBot and Bot: go build ./cmd/bot, then run it with a config the
//     harness writes (BotConfig), wait for /readyz, stop it with SIGTERM or
//     kill it with SIGKILL.
//   - Mix: a deterministic generator of callbacks; request i is a pure
//     function of the seed and i, so that the bot and a bare handler get
//     the same load, and so that tests know what each callback should cause.
//   - Driver: sends the mix open loop (a fixed rate, latency measured from
//     each request's scheduled time) or closed loop (N workers back to back).
//   - ReadAudit and Reconcile: compare the bot's audit log with the calls
//     the fake IM server carried out.
//
// Nothing here is package-level state; every part is a value its caller
// owns and stops.
package harness
