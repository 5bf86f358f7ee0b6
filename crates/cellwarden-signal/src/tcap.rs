//! TCAP (ITU-T Q.773) transactions and the MAP (3GPP TS 29.002) operations in their
//! components. One message is written per component (an invoke, a result, an error or a
//! reject), or one for a TCAP message without components (a dialogue opening or an abort).
//!
//! MAP parameters are read for the identities and addresses they carry: IMSI, MSISDN, IMEI,
//! the MSC/VLR/SGSN/HLR numbers, the gsmSCF, service centre and MLC addresses, and, for the
//! location and subscriber-information enquiries, what information is asked for and whether a
//! location came back. A result names its operation only when the operation code is in it
//! (MAP v2 and later put it there).

use std::collections::{HashMap, VecDeque};

use serde_json::{Map, Value};

use crate::ber::{self, Tlv};
use crate::digits::{address_string, tbcd};
use crate::sigtran::Route;
use crate::{Packet, Sink};

/// The name of a MAP operation code.
pub fn operation_name(code: i64) -> Option<&'static str> {
    Some(match code {
        2 => "updateLocation",
        3 => "cancelLocation",
        4 => "provideRoamingNumber",
        5 => "noteSubscriberDataModified",
        6 => "resumeCallHandling",
        7 => "insertSubscriberData",
        8 => "deleteSubscriberData",
        9 => "sendParameters",
        10 => "registerSS",
        11 => "eraseSS",
        12 => "activateSS",
        13 => "deactivateSS",
        14 => "interrogateSS",
        15 => "authenticationFailureReport",
        17 => "registerPassword",
        18 => "getPassword",
        19 => "processUnstructuredSS-Data",
        20 => "releaseResources",
        22 => "sendRoutingInfo",
        23 => "updateGprsLocation",
        24 => "sendRoutingInfoForGprs",
        25 => "failureReport",
        26 => "noteMsPresentForGprs",
        37 => "reset",
        38 => "forwardCheckSS-Indication",
        43 => "checkIMEI",
        44 => "mt-forwardSM",
        45 => "sendRoutingInfoForSM",
        46 => "mo-forwardSM",
        47 => "reportSM-DeliveryStatus",
        48 => "noteSubscriberPresent",
        49 => "alertServiceCentreWithoutResult",
        50 => "activateTraceMode",
        51 => "deactivateTraceMode",
        55 => "sendIdentification",
        56 => "sendAuthenticationInfo",
        57 => "restoreData",
        58 => "sendIMSI",
        59 => "processUnstructuredSS-Request",
        60 => "unstructuredSS-Request",
        61 => "unstructuredSS-Notify",
        62 => "anyTimeSubscriptionInterrogation",
        63 => "informServiceCentre",
        64 => "alertServiceCentre",
        65 => "anyTimeModification",
        66 => "readyForSM",
        67 => "purgeMS",
        68 => "prepareHandover",
        69 => "prepareSubsequentHandover",
        70 => "provideSubscriberInfo",
        71 => "anyTimeInterrogation",
        72 => "ss-InvocationNotification",
        83 => "provideSubscriberLocation",
        85 => "sendRoutingInfoForLCS",
        86 => "subscriberLocationReport",
        89 => "noteMM-Event",
        _ => return None,
    })
}

/// The name of a MAP application context (`0.4.0.0.1.0.<ac>.<version>`).
pub fn context_name(ac: u64) -> Option<&'static str> {
    Some(match ac {
        1 => "networkLocUp",
        2 => "locationCancellation",
        3 => "roamingNumberEnquiry",
        5 => "locationInfoRetrieval",
        10 => "reset",
        11 => "handoverControl",
        13 => "equipmentMngt",
        14 => "infoRetrieval",
        16 => "subscriberDataMngt",
        19 => "networkUnstructuredSs",
        20 => "shortMsgGateway",
        21 => "shortMsgMO-Relay",
        23 => "shortMsgAlert",
        24 => "mwdMngt",
        25 => "shortMsgMT-Relay",
        26 => "imsiRetrieval",
        27 => "msPurging",
        28 => "subscriberInfoEnquiry",
        29 => "anyTimeInfoEnquiry",
        32 => "gprsLocationUpdate",
        33 => "gprsLocationInfoRetrieval",
        37 => "locationSvcGateway",
        38 => "locationSvcEnquiry",
        43 => "anyTimeInfoHandling",
        _ => return None,
    })
}

/// Invokes waiting for their answer, at most this many (the oldest are forgotten first).
pub const MAX_OPEN_INVOKES: usize = 100_000;

/// The operations of invokes not yet answered, by (transaction id, invoking party's global
/// title, invoke id), so that a result or error that does not name its operation (MAP v1,
/// empty results, errors) is given the one it answers, with `operation_inferred`.
#[derive(Debug, Default)]
pub struct Invokes {
    open: HashMap<(String, String, i64), i64>,
    order: VecDeque<(String, String, i64)>,
}

impl Invokes {
    fn open(&mut self, key: (String, String, i64), op: i64) {
        if self.open.insert(key.clone(), op).is_none() {
            self.order.push_back(key);
        }
        while self.order.len() > MAX_OPEN_INVOKES {
            if let Some(k) = self.order.pop_front() {
                self.open.remove(&k);
            }
        }
    }

    fn answer(&mut self, key: &(String, String, i64), last: bool) -> Option<i64> {
        if last {
            self.open.remove(key)
        } else {
            self.open.get(key).copied()
        }
    }

    /// Invokes waiting for their answer.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The messages of one TCAP message (SCCP user data).
pub fn decode(
    pk: &Packet,
    route: &Route,
    data: &[u8],
    invokes: &mut Invokes,
    out: &mut dyn Sink,
) -> Vec<Map<String, Value>> {
    let Some((msg, _)) = ber::read(data) else {
        out.problem(pk.number, "TCAP message cut off or not BER".into());
        return Vec::new();
    };
    let kind = match msg.id {
        0x61 => "unidirectional",
        0x62 => "begin",
        0x64 => "end",
        0x65 => "continue",
        0x67 => "abort",
        _ => return Vec::new(),
    };
    let mut base = pk.message("map");
    route.fields(&mut base);
    base.insert("tcap_type".into(), kind.into());
    let mut components = None;
    for part in msg.children() {
        match part.id {
            0x48 => {
                base.insert("otid".into(), hex(part.value).into());
            }
            0x49 => {
                base.insert("dtid".into(), hex(part.value).into());
            }
            0x4a => {
                if let Some(c) = part.uint() {
                    base.insert("abort_cause".into(), c.into());
                }
            }
            0x6b => dialogue(&part, &mut base),
            0x6c => components = Some(part),
            _ => {}
        }
    }
    let Some(components) = components else {
        return vec![base];
    };
    let mut msgs = Vec::new();
    let otid = base.get("otid").and_then(|v| v.as_str()).map(str::to_owned);
    let dtid = base.get("dtid").and_then(|v| v.as_str()).map(str::to_owned);
    let gt = |a: &crate::sigtran::Address| a.gt.clone().unwrap_or_default();
    for c in components.children() {
        let mut m = base.clone();
        component(&c, &mut m);
        let id = m.get("invoke_id").and_then(|v| v.as_i64());
        let op = m.get("operation_code").and_then(|v| v.as_i64());
        match (c.id, id) {
            (0xa1, Some(id)) => {
                if let (Some(t), Some(op)) = (&otid, op) {
                    invokes.open((t.clone(), gt(&route.calling), id), op);
                }
            }
            (0xa2 | 0xa7 | 0xa3, Some(id)) => {
                if let Some(t) = &dtid {
                    let last = c.id != 0xa7;
                    let known = invokes.answer(&(t.clone(), gt(&route.called), id), last);
                    if let (None, Some(op)) = (op, known) {
                        m.insert("operation_code".into(), op.into());
                        if let Some(n) = operation_name(op) {
                            m.insert("operation".into(), n.into());
                        }
                        m.insert("operation_inferred".into(), true.into());
                    }
                }
            }
            _ => {}
        }
        msgs.push(m);
    }
    if msgs.is_empty() {
        msgs.push(base);
    }
    msgs
}

/// The application context of a dialogue portion (AARQ, AARE) or its abort.
fn dialogue(part: &Tlv<'_>, m: &mut Map<String, Value>) {
    let Some(ext) = part.child(0x28) else { return };
    let Some(single) = ext.child(0xa0) else {
        return;
    };
    let Some(apdu) = single.children().next() else {
        return;
    };
    let pdu = match apdu.id {
        0x60 => "request",
        0x61 => "response",
        0x64 => "abort",
        _ => "other",
    };
    m.insert("dialogue".into(), pdu.into());
    if let Some(oid) = apdu
        .child(0xa1)
        .and_then(|a| a.child(0x06))
        .and_then(|o| o.oid())
    {
        let arcs: Vec<u64> = oid.split('.').filter_map(|a| a.parse().ok()).collect();
        if arcs.len() == 8
            && arcs[..6] == [0, 4, 0, 0, 1, 0]
            && let Some(n) = context_name(arcs[6])
        {
            m.insert(
                "application_context_name".into(),
                format!("{n}-v{}", arcs[7]).into(),
            );
        }
        m.insert("application_context".into(), oid.into());
    }
}

fn component(c: &Tlv<'_>, m: &mut Map<String, Value>) {
    let kind = match c.id {
        0xa1 => "invoke",
        0xa2 => "result",
        0xa7 => "result_not_last",
        0xa3 => "error",
        0xa4 => "reject",
        _ => "unknown",
    };
    m.insert("component".into(), kind.into());
    let mut items = c.children();
    if let Some(id) = items.next()
        && id.id == 0x02
        && let Some(v) = id.int()
    {
        m.insert("invoke_id".into(), v.into());
    }
    let mut op = None;
    let mut param = None;
    match c.id {
        0xa1 => {
            for t in items {
                match t.id {
                    0x80 => {}
                    0x02 if op.is_none() => op = t.int(),
                    0x06 if op.is_none() => {
                        m.insert("operation_oid".into(), t.oid().unwrap_or_default().into());
                    }
                    _ => {
                        param = Some(t);
                        break;
                    }
                }
            }
        }
        0xa2 | 0xa7 => {
            if let Some(seq) = items.next().filter(|t| t.id == 0x30) {
                let mut inner = seq.children();
                op = inner.next().filter(|t| t.id == 0x02).and_then(|t| t.int());
                param = inner.next();
            }
        }
        0xa3 => {
            if let Some(v) = items.next().and_then(|code| code.int()) {
                m.insert("error_code".into(), v.into());
            }
        }
        0xa4 => {
            if let Some(p) = items.next()
                && p.class() == 0x80
            {
                m.insert(
                    "reject_problem".into(),
                    format!("{}:{}", p.tag, p.int().unwrap_or(0)).into(),
                );
            }
        }
        _ => {}
    }
    let Some(op) = op else { return };
    m.insert("operation_code".into(), op.into());
    if let Some(n) = operation_name(op) {
        m.insert("operation".into(), n.into());
    }
    if let Some(p) = param {
        if c.id == 0xa1 {
            invoke(op, &p, m);
        } else {
            result(op, &p, m);
        }
    }
}

fn set_imsi(m: &mut Map<String, Value>, t: Option<Tlv<'_>>) {
    if let Some(t) = t {
        crate::put(m, "imsi", tbcd(t.value));
    }
}

fn set_addr(m: &mut Map<String, Value>, key: &str, t: Option<Tlv<'_>>) {
    if let Some(a) = t.and_then(|t| address_string(t.value)) {
        crate::put(m, key, a);
    }
}

/// `SubscriberIdentity ::= CHOICE { imsi [0], msisdn [1] }`.
fn subscriber_identity(m: &mut Map<String, Value>, t: Option<Tlv<'_>>) {
    let Some(t) = t else { return };
    set_imsi(m, t.child(0x80));
    set_addr(m, "msisdn", t.child(0x81));
}

fn requested_info(m: &mut Map<String, Value>, t: Option<Tlv<'_>>) {
    let Some(t) = t else { return };
    let names: Vec<&str> = t
        .children()
        .filter_map(|c| {
            Some(match c.id {
                0x80 => "location",
                0x81 => "state",
                0x83 => "current_location",
                0x84 => "domain",
                0x85 => "ms_classmark",
                0x86 => "imei",
                0x87 => "mnp",
                0x8b => "location_eps",
                _ => return None,
            })
        })
        .collect();
    if !names.is_empty() {
        m.insert("requested_info".into(), names.join(",").into());
    }
}

fn invoke(op: i64, p: &Tlv<'_>, m: &mut Map<String, Value>) {
    let ch = |id: u8| p.child(id);
    match op {
        // updateLocation: imsi, msc-Number [1], vlr-Number.
        2 => {
            let mut octets = p.children().filter(|c| c.id == 0x04);
            set_imsi(m, octets.next());
            set_addr(m, "vlr_number", octets.next());
            set_addr(m, "msc_number", ch(0x81));
        }
        // updateGprsLocation: imsi, sgsn-Number.
        23 => {
            let mut octets = p.children().filter(|c| c.id == 0x04);
            set_imsi(m, octets.next());
            set_addr(m, "sgsn_number", octets.next());
        }
        // cancelLocation (v3: [3] SEQUENCE; v1/v2: the identity itself), purgeMS,
        // restoreData, sendAuthenticationInfo v2.
        3 | 67 | 57 | 56 if p.id == 0x04 => set_imsi(m, Some(*p)),
        3 | 67 | 57 => {
            set_imsi(m, ch(0x04).or_else(|| ch(0x30).and_then(|s| s.child(0x04))));
            if op == 67 {
                set_addr(m, "vlr_number", ch(0x80));
                set_addr(m, "sgsn_number", ch(0x81));
            }
        }
        // insertSubscriberData, deleteSubscriberData, sendAuthenticationInfo v3,
        // provideSubscriberInfo, provideRoamingNumber, sendRoutingInfoForGprs.
        7 | 8 | 56 | 70 | 4 | 24 => {
            set_imsi(m, ch(0x80));
            if op == 7 {
                set_addr(m, "msisdn", ch(0x81));
            }
            if op == 4 {
                set_addr(m, "msc_number", ch(0x81));
                set_addr(m, "msisdn", ch(0x82));
            }
            if op == 70 {
                requested_info(m, ch(0xa2));
            }
        }
        // sendRoutingInfo: msisdn [0], gmsc-OrGsmSCF-Address [6].
        22 => {
            set_addr(m, "msisdn", ch(0x80));
            set_addr(m, "gmsc_address", ch(0x86));
        }
        // sendRoutingInfoForSM: msisdn [0], serviceCentreAddress [2].
        45 => {
            set_addr(m, "msisdn", ch(0x80));
            set_addr(m, "service_centre", ch(0x82));
        }
        // mt/mo-forwardSM: sm-RP-DA (imsi [0], serviceCentreAddressDA [4]), sm-RP-OA
        // (msisdn [2], serviceCentreAddressOA [4]).
        44 | 46 => {
            set_imsi(m, ch(0x80));
            set_addr(m, "msisdn", ch(0x82));
            set_addr(m, "service_centre", ch(0x84));
        }
        // reportSM-DeliveryStatus: msisdn, serviceCentreAddress.
        47 => {
            let mut octets = p.children().filter(|c| c.id == 0x04);
            set_addr(m, "msisdn", octets.next());
            set_addr(m, "service_centre", octets.next());
        }
        // anyTimeInterrogation: subscriberIdentity [0], requestedInfo [1], gsmSCF [3].
        71 => {
            subscriber_identity(m, ch(0xa0));
            requested_info(m, ch(0xa1));
            set_addr(m, "gsmscf_address", ch(0x83));
        }
        // anyTimeSubscriptionInterrogation: subscriberIdentity [0], gsmSCF [2].
        62 => {
            subscriber_identity(m, ch(0xa0));
            set_addr(m, "gsmscf_address", ch(0x82));
        }
        // anyTimeModification: subscriberIdentity [0], gsmSCF [1].
        65 => {
            subscriber_identity(m, ch(0xa0));
            set_addr(m, "gsmscf_address", ch(0x81));
        }
        // provideSubscriberLocation: mlc-Number, imsi [2], msisdn [3], imei [5].
        83 => {
            set_addr(m, "mlc_number", ch(0x04));
            set_imsi(m, ch(0x82));
            set_addr(m, "msisdn", ch(0x83));
            if let Some(t) = ch(0x85) {
                m.insert("imei".into(), tbcd(t.value).into());
            }
        }
        // sendRoutingInfoForLCS: mlcNumber [0], targetMS [1].
        85 => {
            set_addr(m, "mlc_number", ch(0x80));
            subscriber_identity(m, ch(0xa1));
        }
        // subscriberLocationReport: msisdn [0], imsi [1], imei [2].
        86 => {
            set_addr(m, "msisdn", ch(0x80));
            set_imsi(m, ch(0x81));
        }
        // sendIMSI: the MSISDN itself.
        58 => set_addr(m, "msisdn", Some(*p)),
        // processUnstructuredSS-Request / unstructuredSS-Request: msisdn [0].
        59 | 60 => set_addr(m, "msisdn", ch(0x80)),
        // checkIMEI: v3 SEQUENCE { imei }, v2 the IMEI itself.
        43 => {
            let t = if p.id == 0x04 { Some(*p) } else { ch(0x04) };
            if let Some(t) = t {
                m.insert("imei".into(), tbcd(t.value).into());
            }
        }
        _ => {}
    }
}

fn result(op: i64, p: &Tlv<'_>, m: &mut Map<String, Value>) {
    let ch = |id: u8| p.child(id);
    match op {
        // updateLocation: hlr-Number.
        2 | 23 => set_addr(m, "hlr_number", ch(0x04)),
        // sendRoutingInfo v3: [3] SEQUENCE { imsi [9], ... }.
        22 => set_imsi(m, ch(0x89).or_else(|| ch(0x04))),
        // sendRoutingInfoForSM: imsi, locationInfoWithLMSI [0] { networkNode-Number [1] }.
        45 => {
            set_imsi(m, ch(0x04));
            if let Some(l) = ch(0xa0) {
                set_addr(m, "serving_node", l.child(0x81));
            }
        }
        // sendIMSI: the IMSI itself.
        58 if p.id == 0x04 => set_imsi(m, Some(*p)),
        // anyTimeInterrogation, provideSubscriberInfo: subscriberInfo { locationInformation
        // [0] { ..., vlr-number [1] } }.
        71 | 70 => {
            if let Some(loc) = ch(0x30).and_then(|i| i.child(0xa0)) {
                m.insert("location_returned".into(), true.into());
                set_addr(m, "vlr_number", loc.child(0x81));
            }
        }
        // provideSubscriberLocation: locationEstimate.
        83 if ch(0x04).is_some() => {
            m.insert("location_returned".into(), true.into());
        }
        // sendRoutingInfoForLCS: targetMS [0], lcsLocationInfo [1] { networkNode-Number }.
        85 => {
            subscriber_identity(m, ch(0xa0));
            if let Some(l) = ch(0xa1) {
                set_addr(m, "serving_node", l.child(0x04));
            }
        }
        _ => {}
    }
}
