package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/maftia/maftia/core"
	"github.com/maftia/maftia/node"
	"github.com/maftia/maftia/smr"
	"github.com/maftia/maftia/storage"
)

// State transfer at the runtime (smr/xfer.go does the protocol): the
// replica probes its peers once it runs, so a replica restarted with an
// empty or old disk learns the latest certified checkpoint even when no
// new one is taken; a transferred state arrives as a record under
// smr.TransferInstance (durable before anything executed after it is
// logged) and a Transferred delivery, upon which it is stored as the
// latest checkpoint (storage.SaveCheckpoint), the record deleted and the
// log below it truncated.

// restoreTransferred installs a transferred state persisted before the
// replica stopped and newer than its latest stored checkpoint (a crash
// between the transfer and saveCheckpoint).
func (s *Server) restoreTransferred() error {
	recs, err := s.pdb.Records(smr.TransferInstance)
	if err != nil {
		return fmt.Errorf("server: read transferred state: %w", err)
	}
	for _, rec := range recs {
		if rec.Key != smr.TransferRecordKey {
			continue
		}
		cp, state, err := smr.DecodeTransferRecord(rec.Value)
		if err != nil {
			return fmt.Errorf("server: transferred state: %w", err)
		}
		if cp.Seq <= s.rep.StableCheckpoint().Seq {
			return nil // already stored as a checkpoint
		}
		if err := s.rep.RestoreCheckpoint(cp, state); err != nil {
			return fmt.Errorf("server: restore transferred checkpoint: %w", err)
		}
		s.truncated = smr.LogShardOf(cp.Seq + 1)
		s.log.Info("restored transferred checkpoint", "seq", cp.Seq)
		// Store it as the latest checkpoint now (the record goes after).
		if err := s.pdb.SaveCheckpoint(storage.Checkpoint{Seq: cp.Seq, Digest: cp.Digest[:], Snapshot: state, Certificate: cp.Signature}); err != nil {
			return fmt.Errorf("server: save transferred checkpoint: %w", err)
		}
	}
	return nil
}

// deliverControl handles the Replica's deliveries other than replies.
func (s *Server) deliverControl(d core.Delivery) {
	tr, ok := d.Value.(smr.Transferred)
	if !ok {
		return
	}
	s.transfers.Add(1)
	s.pos.Store(s.rep.Position())
	s.stable.Store(tr.Checkpoint.Seq)
	st := s.rep.Stats()
	s.stats.Store(&st)
	s.log.Info("caught up by state transfer", "seq", tr.Checkpoint.Seq)
	if s.pdb == nil {
		s.rep.TakeCertified() // nothing to store it in
		return
	}
	s.saveCheckpoint()
	if got, err := s.pdb.LatestCheckpoint(); err == nil && got.Seq >= tr.Checkpoint.Seq {
		if err := s.pdb.DeleteRecords(smr.TransferInstance); err != nil {
			s.log.Error("delete transfer record", "err", err)
		}
	}
}

// Transfers is the number of state transfers this replica completed.
func (s *Server) Transfers() uint64 { return s.transfers.Load() }

// probePeers asks the peers for their latest certified checkpoint once
// the runtime runs (Submit refuses inputs until then: retried for a few
// seconds).
func (s *Server) probePeers(ctx context.Context, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 500 {
			err := s.nd.Submit(ctx, core.Input{Instance: smr.TransferInstance})
			if !errors.Is(err, node.ErrStopped) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
}

// probeWhileIdle probes the peers again (as at start) whenever the
// replica's position stayed put for a whole period: a replica left behind
// by a partition or a stall, with no client traffic since, still learns of
// the certified checkpoint the others reached and catches up. Each probe
// costs one PROBE to each peer and one STATUS back; a certificate seen
// before is not verified again (smr/xfer.go).
func (s *Server) probeWhileIdle(ctx context.Context, wg *sync.WaitGroup, every time.Duration) {
	wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		last := s.pos.Load()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if pos := s.pos.Load(); pos != last {
				last = pos
				continue
			}
			s.idleProbes.Add(1)
			if err := s.nd.Submit(ctx, core.Input{Instance: smr.TransferInstance}); err != nil && ctx.Err() == nil {
				s.log.Debug("idle probe", "err", err)
			}
		}
	})
}
