//! Startup glue: flags, config, layout, then the exporter and the agent.

pub fn main() -> i32 {
    0
}
