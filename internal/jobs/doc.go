// Package jobs holds orgs' River jobs: the email jobs that the API's transactions insert
// (their arguments are ids only, never an address or a token) and the workers that send
// them, and the reminder service's periodic jobs. Kinds and JSON tags are permanent.
//
// # Every client knows every kind
//
// All processes share one database and one River schema, and River's maintenance runs in
// whichever client leads, mailer or reminder. Its rescuer retries a job left running by a
// crashed worker, asking the job's worker for its timeout and next retry, and discards a
// job whose kind its client has no worker for. So every client that works jobs is built by
// NewClient, which registers every kind of every process (kinds): the process's own
// workers, and for the other processes' kinds a stand-in that answers the rescuer exactly
// as the real worker would (same WorkerDefaults, and the same JobTimeout and RetryPolicy
// in every client). A kind is still worked only by its own process: a client fetches only
// the queues it is configured with (River's producer selects jobs by queue), and each
// kind's InsertOpts put it on its process's queue (QueueMail, QueueReminder). A stand-in
// that is handed a job anyway logs an error and snoozes it, never discards it.
//
// One schema per process would keep each process's jobs where only it rescues them, but
// the API inserts the mail jobs and the reminder service inserts mail jobs too, so every
// inserter would need to know each kind's schema, and River UI and migrations would come
// twice; registering the kinds everywhere costs a list.
//
// # Discarded jobs
//
// ErrorHandler counts the jobs a process's workers give up on
// (orgs_jobs_discarded_total{kind}); DiscardedCollector reads the discarded jobs of every
// path, the rescuer's included, from river_job at scrape time (orgs_jobs_discarded{kind}).
package jobs
