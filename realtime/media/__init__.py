"""Media plumbing shared by the runners: the speaker's audio ring and the A/V sync rule."""
