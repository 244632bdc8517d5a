package replay_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/timguard/timguard/record"
	"github.com/timguard/timguard/replay"
)

func TestOpenPathReadsADirectorysRecordingFilesOldestFirst(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	line := func(user string) string { return string(msg(user, "hi")) + "\n" }
	write("callbacks-20261204T11.jsonl", line("c")+"oops\n"+line("d"))
	write("callbacks-20261204T10.jsonl", line("a")+line("b"))
	write("notes.jsonl", line("x"))
	src, err := replay.OpenPath(dir, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var got []string
	for {
		it, err := src.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var le *record.LineError
		if errors.As(err, &le) {
			got = append(got, filepath.Base(it.File)+":skipped")
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, filepath.Base(it.File)+":"+string(rune('0'+it.Line)))
	}
	want := []string{"callbacks-20261204T10.jsonl:1", "callbacks-20261204T10.jsonl:2", "callbacks-20261204T11.jsonl:1", "callbacks-20261204T11.jsonl:skipped", "callbacks-20261204T11.jsonl:3"}
	if len(got) != len(want) {
		t.Fatalf("read %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("read %v, want %v", got, want)
		}
	}
	if _, err := replay.OpenPath(t.TempDir(), time.Time{}); err == nil {
		t.Error("an empty directory opened without an error")
	}
}
