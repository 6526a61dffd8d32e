use crate::error::Result;

pub fn run() -> Result<()> {
    super::print_json(&crate::features::features())
}
