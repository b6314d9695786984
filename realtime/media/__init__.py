"""Media plumbing shared by the runners: the speaker's audio ring, the A/V sync rule, captions."""
