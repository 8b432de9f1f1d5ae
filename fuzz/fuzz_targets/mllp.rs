//! The MLLP frame reader: the input is what a peer sends on a connection. Frames or an
//! error, never a panic or a hang; a frame read is the bytes between its blocks.

#![no_main]

use lettergate::protocol::hl7::mllp;
use libfuzzer_sys::fuzz_target;
use tokio::io::BufReader;

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut reader = BufReader::new(data);
        while let Ok(Some(frame)) = mllp::read_frame(&mut reader).await {
            assert!(!frame.contains(&mllp::END));
        }
    });
});
