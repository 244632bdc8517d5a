//go:build unix

package app

import (
	"bytes"
	"errors"
	"os/exec"
	"testing"
)

// botCommand builds the bot once for the test and returns a runner of its
// offline subcommands (check, simulate, replay), as an operator runs them:
// it returns the exit code and fills stdout and stderr.
func botCommand(t *testing.T) func(args []string, stdout, stderr *bytes.Buffer) int {
	t.Helper()
	bin := buildBot(t)
	return func(args []string, stdout, stderr *bytes.Buffer) int {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		err := cmd.Run()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode()
		}
		if err != nil {
			t.Fatalf("bot %v: %v", args, err)
		}
		return 0
	}
}
