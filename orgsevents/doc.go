// Package orgsevents is the public Go client for orgs' domain events: the CloudEvents
// envelope as it appears on the NATS JetStream stream ORGS_EVENTS, a typed struct for the
// data of every event type, the JSON Schemas of that data, and Subscribe, which runs a
// durable pull consumer with explicit acks, retries with backoff and de-duplication by
// event id.
//
// Events are delivered at least once. Each event carries an id (a UUID, also sent as the
// Nats-Msg-Id header) and seq, a number that strictly increases along the whole stream.
// The events of one organization are on the stream in the order their transactions
// committed.
//
// A minimal subscriber:
//
//	nc, _ := nats.Connect(url)
//	js, _ := jetstream.New(nc)
//	err := orgsevents.Subscribe(ctx, js, orgsevents.Config{Durable: "billing"},
//		func(ctx context.Context, ev orgsevents.Event) error {
//			if ev.Type != orgsevents.TypeMemberAdded {
//				return nil
//			}
//			var d orgsevents.MemberAdded
//			if err := ev.Decode(&d); err != nil {
//				return fmt.Errorf("%w: %v", orgsevents.ErrPoison, err)
//			}
//			return addSeat(ctx, d.OrganizationID, d.User.ID)
//		})
package orgsevents
