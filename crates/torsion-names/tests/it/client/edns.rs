//! EDNS(0) in the client: the OPT record offering 1232 bytes, answers that size over UDP
//! from a Torsion server, and servers that answer FORMERR or NOTIMP to EDNS asked again
//! without it.

use torsion::Failure;
use torsion_names::client::{ClientResolver, DEFAULT_EDNS_PAYLOAD};
use torsion_names::proto::op::ResponseCode;
use torsion_names::{RData, Resolver};

use super::{a, reply, serve_zone, FakeServer};
use crate::server::big_zone;

#[torsion::test(timeout = 10)]
async fn queries_offer_a_1232_byte_buffer_unless_told_not_to() -> Result<(), Failure> {
    let r = torsion::reactor();
    let server = FakeServer::start(&r, |q, _| {
        vec![reply(q, vec![a(&q.queries[0].name, [192, 0, 2, 1], 60)])
            .to_vec()
            .unwrap()]
    });
    let client = ClientResolver::new(&r, vec![server.addr()]);
    client.lookup_address("www.example.test").await?;
    client.set_edns(None);
    client.lookup_address("www.example.test").await?;
    let seen = server.seen.borrow().clone();
    let edns = seen[0].0.edns.as_ref().expect("an OPT record");
    assert_eq!(
        (edns.max_payload(), edns.version()),
        (DEFAULT_EDNS_PAYLOAD, 0)
    );
    assert_eq!(DEFAULT_EDNS_PAYLOAD, 1232);
    assert!(
        seen[1].0.edns.is_none(),
        "set_edns(None): no OPT, as Twisted"
    );
    server.port.stop_listening();
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_1000_byte_answer_comes_over_udp_from_a_torsion_server() -> Result<(), Failure> {
    let r = torsion::reactor();
    // UDP only: an answer cut to 512 bytes (TC) would need TCP, which nobody serves here.
    let (port, addr) = serve_zone(&r, &big_zone());
    let client = ClientResolver::new(&r, vec![addr]);
    let answer = client.lookup_text("big.example.test").await?;
    let RData::TXT(txt) = &answer.answers[0].data else {
        panic!("not TXT: {answer:?}");
    };
    assert_eq!(txt.txt_data.iter().map(|s| s.len()).sum::<usize>(), 1000);
    port.stop_listening();
    Ok(())
}

#[torsion::test(timeout = 10)]
async fn a_server_refusing_edns_is_asked_again_without_it() -> Result<(), Failure> {
    let r = torsion::reactor();
    for refusal in [ResponseCode::FormErr, ResponseCode::NotImp] {
        // A server from before EDNS: it refuses any query carrying an OPT record.
        let server = FakeServer::start(&r, move |q, _| {
            let mut m = reply(q, vec![a(&q.queries[0].name, [192, 0, 2, 7], 60)]);
            if q.edns.is_some() {
                m = reply(q, vec![]);
                m.metadata.response_code = refusal;
            }
            vec![m.to_vec().unwrap()]
        });
        let client = ClientResolver::new(&r, vec![server.addr()]);
        let answer = client.lookup_address("old.example.test").await?;
        assert_eq!(answer.answers.len(), 1, "{refusal:?}");
        let seen = server.seen.borrow().clone();
        assert_eq!(seen.len(), 2, "{refusal:?}");
        assert!(seen[0].0.edns.is_some() && seen[1].0.edns.is_none());
        server.port.stop_listening();
    }
    Ok(())
}
