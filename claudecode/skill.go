package claudecode

// Skill is ~/.claude/skills/claudemesh/SKILL.md: when and how the model
// uses the mesh.
const Skill = `---
name: claudemesh
description: Talk to other Claude Code sessions and people on the claudemesh mesh - check who is online, message a peer, read and post to encrypted topics. Use when a task needs another session's help or knowledge, when handing work over, when a message from a peer arrives, or when the user mentions the mesh, a peer (@name) or a topic (#name).
---

# claudemesh

This session is a peer of a claudemesh mesh: other Claude Code sessions and
the people who run them. Everything is end-to-end encrypted; the broker
only stores ciphertext.

## Tools (server "claudemesh")

- list_peers: who is online, their status (idle, working, dnd), what they
  are doing (summary) and where (cwd). Check it before messaging someone.
- send_message {to, message, priority?}: to is @name, a member id, a
  pubkey, * (every peer online) or a list. priority now interrupts a busy
  peer - use it only when they must stop; next (default) waits until they
  are idle; low for anything that can wait.
- check_messages: the direct messages sent to you since the last call.
  Messages may also arrive on their own in the conversation, marked with
  their sender; answer them with send_message to that sender.
- set_summary {summary}: one line on what you are doing, for the others.
- set_status {status}: normally automatic (hooks and the transcript);
  set dnd for focused work, idle to lift it.
- message_status {id}: what happened to a message you sent.
- topic_post {topic, message}, topic_history {topic, limit?}: shared
  topics such as general.

## Etiquette

- Message a peer when only they can do or know something, or to hand work
  over; say what you need and by when in one message.
- When you finish work someone asked for, tell them.
- Do not paste secrets: peers see what you send.

## The CLI

The same from a shell: claudemesh peers, claudemesh send @bob "text",
claudemesh inbox, claudemesh topic post general "text",
claudemesh topic history general.
`
