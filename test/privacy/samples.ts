import type { DetectorName } from '../../src/privacy/index.js';

const b64url = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

/** A syntactically real JWT (HS256 header, small payload); not a live credential. */
export const SAMPLE_JWT = `${b64url({ alg: 'HS256', typ: 'JWT' })}.${b64url({ sub: '1234567890', name: 'Jane' })}.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`;

/** The secret material of a PEM block (what must not survive), and the block itself. */
export const SAMPLE_PEM_BODY = 'MIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1Pt8Qu';
export const SAMPLE_PEM = `-----BEGIN RSA PRIVATE KEY-----\n${SAMPLE_PEM_BODY}\n-----END RSA PRIVATE KEY-----`;

/**
 * Per detector: [text as it appears, the sensitive part that must not survive]. Test values only
 * (documentation card numbers, example domains, the AWS documentation key id).
 */
export const PII_SAMPLES: Record<DetectorName, [string, string][]> = {
  email: [['contact jane.doe+ml@example.co.uk today', 'jane.doe+ml@example.co.uk']],
  payment_card: [
    ['card 4111 1111 1111 1111 on file', '4111 1111 1111 1111'],
    ['card 4111-1111-1111-1111', '4111-1111-1111-1111'],
    ['mc 5555555555554444', '5555555555554444'],
    ['amex 378282246310005', '378282246310005'],
  ],
  iban: [['pay to GB82 WEST 1234 5698 7654 32 now', 'GB82 WEST 1234 5698 7654 32']],
  us_ssn: [['ssn 123-45-6789', '123-45-6789']],
  phone: [
    ['call +14155552671', '4155552671'],
    ['call +44 20 7946 0958', '7946 0958'],
    ['tel (415) 555-2671', '555-2671'],
  ],
  ipv4: [['from 192.168.1.23:8080', '192.168.1.23']],
  ipv6: [
    ['from 2001:db8::8a2e:370:7334', '8a2e:370:7334'],
    ['from 2001:0db8:85a3:0000:0000:8a2e:0370:7334', '8a2e:0370:7334'],
  ],
  jwt: [[`token=${SAMPLE_JWT}`, SAMPLE_JWT.split('.')[1]]],
  bearer_token: [['Authorization: Bearer abcdef1234567890XYZ', 'abcdef1234567890XYZ']],
  private_key: [[`key:\n${SAMPLE_PEM}\nend`, SAMPLE_PEM_BODY]],
  url_password: [['--db-url=postgres://admin:S3cretPassw0rd@db.example.com/app', 'S3cretPassw0rd']],
  api_key: [
    ['aws AKIAIOSFODNN7EXAMPLE', 'AKIAIOSFODNN7EXAMPLE'],
    [`gh ghp_${'a1B2c3D4e5'.repeat(4)}`, 'a1B2c3D4e5'.repeat(4)],
    ['slack xoxb-123456789012-abcdefghij', '123456789012-abcdefghij'],
    ['openai sk-proj-abcdefghijklmnopqrstuvwx', 'abcdefghijklmnopqrstuvwx'],
    ['anthropic sk-ant-api03-abcdefghijklmnopqrstuvwxyz_0123', 'abcdefghijklmnopqrstuvwxyz_0123'],
    ['google AIzaSyA-1234567890abcdefghijklmnopqrstu', 'SyA-1234567890abcdefghijklmnopqrstu'],
  ],
};

/**
 * Values mltrail itself writes (and that appear in every audit body); no detector, in the SDK or in the
 * collector, may change them. The UUIDs are chosen to be all-decimal in their leading groups, the case
 * where loose digit patterns fire.
 */
export const ID_SAMPLES: string[] = [
  '01935629-4812-7345-8123-456789012345', // UUIDv7 whose first groups are all decimal digits
  '41111111-1111-4111-9111-111111111111', // UUIDv4, all decimal
  '0193a4c4-7c1e-7a3b-9a51-3f7c2d1e8b90',
  'sha256:2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae',
  'sha256:4111111111111111411111111111111141111111111111114111111111111111',
  '4bf92f3577b34da6a3ce929d0e0e4736',
  '41111111111111114111111111111111', // a 32-hex trace id that happens to be all digits
  '00f067aa0ba902b7',
  '2026-11-28T07:00:00.000Z',
  '1.2.3',
  '2.14.1-rc.2',
  '0.7310585786300049',
  '[0.1,0.25,-3.5,17.25,1e-7]',
  '1732780800000',
];
