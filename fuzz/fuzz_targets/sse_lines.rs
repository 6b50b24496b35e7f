//! The SSE line reader fed arbitrary bytes in arbitrary chunks, with an arbitrary line limit,
//! and every `data:` line it yields given to the message parser.
//!
//! Input: two bytes of limit (`ff ff`: the default 1 MiB), one byte of cut count, two bytes
//! per cut point, then the stream.
//!
//! Checked: no panic; never more than the limit held, no line longer than it or holding a
//! line end; the lines (and whether the limit was hit) do not depend on how the stream was
//! cut; a message parsed by a parser that has seen earlier lines equals one parsed afresh
//! (the name cache changes nothing), and keeps the documented bounds.
#![no_main]

use hystrix_turbine::parse::{DEFAULT_MAX_LINE, Line, LineReader, MAX_FIELDS, Message, Parser};
use libfuzzer_sys::fuzz_target;

/// Lines delivered, and whether the reader refused the stream.
fn read(chunks: &[&[u8]], max: usize) -> (Vec<Vec<u8>>, bool, usize) {
    let mut reader = LineReader::new(max);
    let mut lines = Vec::new();
    for chunk in chunks {
        let result = reader.feed(chunk, |line| {
            assert!(
                line.len() <= max,
                "a line of {} bytes over {max}",
                line.len()
            );
            assert!(
                !line.contains(&b'\n') && !line.contains(&b'\r'),
                "a line holds a line end"
            );
            lines.push(line.to_vec());
        });
        assert!(
            reader.pending() <= max,
            "{} held over {max}",
            reader.pending()
        );
        if let Err(e) = result {
            assert_eq!(e.max, max);
            return (lines, true, 0);
        }
    }
    let pending = reader.pending();
    (lines, false, pending)
}

fn check_message(m: &Message) {
    assert!(
        m.reporting_hosts >= 0,
        "reportingHosts {}",
        m.reporting_hosts
    );
    assert!(m.fields.len() <= MAX_FIELDS);
    for (i, (name, _)) in m.fields.iter().enumerate() {
        assert!(
            !matches!(&**name, "type" | "name" | "reportingHosts" | "currentTime"),
            "{name} kept among the fields"
        );
        assert!(
            m.fields[..i].iter().all(|(other, _)| other != name),
            "duplicate field {name}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let [l0, l1, n, rest @ ..] = data else {
        return;
    };
    let max = match u16::from_le_bytes([*l0, *l1]) {
        u16::MAX => DEFAULT_MAX_LINE,
        max => usize::from(max),
    };
    let n = usize::from(*n % 32);
    if rest.len() < 2 * n {
        return;
    }
    let (cuts, stream) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> = cuts
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::with_capacity(n + 1);
    let mut start = 0;
    for cut in cuts {
        chunks.push(&stream[start..cut]);
        start = cut;
    }
    chunks.push(&stream[start..]);

    let chunked = read(&chunks, max);
    let whole = read(&[stream], max);
    assert_eq!(chunked, whole, "the chunking changed the lines");

    let mut parser = Parser::new();
    for line in &chunked.0 {
        if let Line::Data(json) = Line::classify(line) {
            let kept = parser.parse(json);
            let fresh = Parser::new().parse(json);
            match (&kept, &fresh) {
                (Ok(a), Ok(b)) => {
                    assert_eq!(a, b, "the name cache changed the message");
                    check_message(a);
                }
                (Err(_), Err(_)) => {}
                _ => panic!("the name cache changed the verdict: {kept:?} / {fresh:?}"),
            }
        }
    }
});
