package chat_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-im/parley/peer/apitype"
	"github.com/parley-im/parley/peer/client"
)

// proc is a `parley up` process that can be killed and restarted on the
// same home and port.
type proc struct {
	t    *testing.T
	bin  string
	home string
	port int
	boot string

	mu   sync.Mutex
	cmd  *exec.Cmd     // guarded by mu
	done chan struct{} // guarded by mu; closed when cmd has exited
}

func (p *proc) start() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	args := []string{"up", "--home", p.home, "--listen", fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p.port),
		"--no-mdns", "--no-port-map", "--dht-mode", "server", "--log-level", "warn", "--bootstrap", "none"}
	if p.boot != "" {
		args[len(args)-1] = p.boot
	}
	cmd := exec.Command(p.bin, args...)
	logf, err := os.OpenFile(p.home+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		p.t.Fatal(err)
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		p.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	p.cmd, p.done = cmd, done
}

// kill SIGKILLs the process (no chance to clean up) and waits for it to die.
func (p *proc) kill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Kill()
	<-p.done
	p.cmd = nil
}

// stop ends the process with SIGTERM, as a user would.
func (p *proc) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		p.t.Errorf("%s did not stop on SIGTERM", p.home)
		p.cmd.Process.Kill()
		<-p.done
	}
	p.cmd = nil
}

// waitReady waits until the node answers on its socket.
func (p *proc) waitReady(ctx context.Context) *client.Client {
	p.t.Helper()
	c := client.New(p.home)
	for {
		if _, err := c.ID(ctx); err == nil {
			return c
		}
		select {
		case <-ctx.Done():
			p.t.Fatalf("node %s never became ready", p.home)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func buildParley(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "parley")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/parley-im/parley/cmd/parley")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build parley: %v\n%s", err, out)
	}
	return bin
}

// TestCrashDurability sends 1,000 messages through the local API of a real
// `parley up` process while the sender and the receiver are each killed
// with SIGKILL at random moments and restarted. At the end both histories
// hold exactly the 1,000 messages in order, none twice, all delivered, and
// the session still works both ways.
func TestCrashDurability(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test skipped in -short mode")
	}
	const total = 1000
	bin := buildParley(t)
	dir, err := os.MkdirTemp("", "parley-crash-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(dir)
		} else {
			t.Logf("homes and logs kept in %s", dir)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	alice := &proc{t: t, bin: bin, home: filepath.Join(dir, "alice"), port: freePort(t)}
	alice.start()
	t.Cleanup(alice.stop)
	ac := alice.waitReady(ctx)
	aid, _ := ac.ID(ctx)
	bob := &proc{t: t, bin: bin, home: filepath.Join(dir, "bob"), port: freePort(t), boot: aid.Addrs[0]}
	bob.start()
	t.Cleanup(bob.stop)
	bc := bob.waitReady(ctx)
	if _, err := bc.AddContact(ctx, aid.PeerID, "alice"); err != nil {
		t.Fatal(err)
	}
	inv, err := bc.Invite(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ac.AddContact(ctx, inv.Link, "bob"); err != nil {
		t.Fatal(err)
	}

	// The killer SIGKILLs alice or bob whenever the sender asks (every 20 to
	// 60 messages), at a random moment relative to what the nodes are doing,
	// and restarts it after a random pause.
	killNow := make(chan struct{})
	sendingDone := make(chan struct{})
	var killerWG sync.WaitGroup
	killerWG.Add(1)
	kills := map[string]int{}
	go func() {
		defer killerWG.Done()
		rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
		for {
			select {
			case <-sendingDone:
				return
			case <-killNow:
			}
			p, who := alice, "alice"
			if rng.IntN(2) == 1 {
				p, who = bob, "bob"
			}
			time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond)
			p.kill()
			kills[who]++
			time.Sleep(time.Duration(rng.IntN(200)) * time.Millisecond)
			p.start()
		}
	}()

	// Send with fixed ids so a send interrupted by a kill can be retried
	// without creating a second copy.
	rng := rand.New(rand.NewPCG(2, uint64(time.Now().UnixNano())))
	nextKill := 20 + rng.IntN(40)
	ids := make([]string, total)
	for i := range total {
		ids[i] = fmt.Sprintf("%032x", i+1)
		text := "message " + strconv.Itoa(i)
		if i == nextKill {
			killNow <- struct{}{} // waits until the previous victim restarted
			nextKill += 20 + rng.IntN(40)
		}
		for {
			_, err := ac.SendWithID(ctx, "bob", text, ids[i])
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			time.Sleep(20 * time.Millisecond) // alice is restarting
		}
	}
	close(sendingDone)
	killerWG.Wait()
	t.Logf("sent %d messages; SIGKILLed alice %d times and bob %d times", total, kills["alice"], kills["bob"])
	if kills["alice"] == 0 || kills["bob"] == 0 {
		t.Fatalf("the killer did not hit both sides: %v", kills)
	}
	alice.waitReady(ctx)
	bob.waitReady(ctx)

	// Wait until every message is delivered.
	for {
		log, err := ac.Log(ctx, "bob", total+10)
		if err == nil {
			n := 0
			for _, m := range log {
				if m.Outgoing && m.State == apitype.StateDelivered {
					n++
				}
			}
			if n == total {
				break
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("not all messages delivered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	check := func(who string, c *client.Client, conv string, outgoing bool) {
		log, err := c.Log(ctx, conv, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(log) != total {
			t.Fatalf("%s holds %d messages, want %d", who, len(log), total)
		}
		for i, m := range log {
			if m.ID != ids[i] || m.Text != "message "+strconv.Itoa(i) || m.Outgoing != outgoing {
				t.Fatalf("%s message %d = %+v, want id %s in order", who, i, m, ids[i])
			}
		}
	}
	check("alice", ac, "bob", true)
	check("bob", bc, "alice", false)

	// The session still works both ways.
	m, err := bc.Send(ctx, "alice", "still talking after the crashes")
	if err != nil {
		t.Fatal(err)
	}
	for {
		log, _ := bc.Log(ctx, "alice", 1)
		if len(log) == 1 && log[0].ID == m.ID && log[0].State == apitype.StateDelivered {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("bob's reply was never delivered")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
